//! `word_pairs.png` of `kindling lab word2vec`: word pairs that differ by
//! the same relation (man → woman, king → queen; country → capital) as
//! arrows in a 2-D projection of their vectors, one panel per relation
//! (the first two principal components of that panel's words). If the
//! vectors hold the relation as an offset, the arrows of a panel run
//! parallel and about equally long. Beside them, the analogy accuracy of
//! each section of the test set as bars.

use super::{axis_number, draw_png, sequential, PlotResult, SANS};
use plotters::prelude::*;
use std::path::Path;

/// One arrow: from a word to its partner, both projected.
pub struct Arrow {
    pub from: String,
    pub to: String,
    pub start: (f32, f32),
    pub end: (f32, f32),
}

/// A panel of arrows for one relation.
pub struct ArrowPanel {
    pub title: String,
    pub arrows: Vec<Arrow>,
}

/// A section of the analogy test and its accuracy (0..1), with the number
/// of questions answered.
pub struct Bar {
    pub label: String,
    pub accuracy: f32,
    pub answered: usize,
}

const PANEL: (u32, u32) = (560, 560);

fn panel_colour(g: usize) -> RGBColor {
    if g.is_multiple_of(2) {
        RGBColor(200, 70, 40)
    } else {
        sequential(0.8)
    }
}

/// An axis number, with the rounding noise of a zero shown as 0.
fn tick(v: f32, span: f32) -> String {
    if v.abs() < span * 1e-6 {
        "0".into()
    } else {
        axis_number(v as f64)
    }
}

/// Draws the arrow panels and then the per-section bars, side by side, to `path`.
pub fn draw_word_pairs(path: &Path, panels: &[ArrowPanel], bars: &[Bar]) -> PlotResult<()> {
    let n = panels.len() as u32 + 1;
    let size = (PANEL.0 * n, PANEL.1);
    draw_png(path, size, |root| {
        let areas = root.split_evenly((1, n as usize));
        for (g, (area, panel)) in areas.iter().zip(panels).enumerate() {
            draw_arrows(area, &panel.title, &panel.arrows, panel_colour(g))?;
        }
        draw_bars(areas.last().expect("n >= 1"), bars)
    })
}

fn draw_arrows(area: &super::Canvas, title: &str, arrows: &[Arrow], c: RGBColor) -> PlotResult<()> {
    let pts = arrows.iter().flat_map(|a| [a.start, a.end]);
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for (x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 > x1 {
        (x0, x1, y0, y1) = (-1.0, 1.0, -1.0, 1.0);
    }
    // Room for the labels beyond the outermost points.
    let (px, py) = (((x1 - x0) * 0.15).max(1e-3), ((y1 - y0) * 0.08).max(1e-3));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (SANS, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d((x0 - px)..(x1 + px), (y0 - py)..(y1 + py))?;
    chart
        .configure_mesh()
        .x_desc("first principal component")
        .y_desc("second principal component")
        .x_label_formatter(&|v| tick(*v, x1 - x0))
        .y_label_formatter(&|v| tick(*v, y1 - y0))
        .label_style((SANS, 13))
        .light_line_style(WHITE)
        .draw()?;
    for a in arrows {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![a.start, a.end],
            c.stroke_width(2),
        )))?;
        // The arrow head: two short strokes back from the end, in pixels.
        let (sx, sy) = chart.backend_coord(&a.start);
        let (ex, ey) = chart.backend_coord(&a.end);
        let (dx, dy) = ((ex - sx) as f32, (ey - sy) as f32);
        let len = (dx * dx + dy * dy).sqrt().max(1.0);
        let (ux, uy) = (dx / len, dy / len);
        let head = |turn: f32| {
            let (c, s) = (turn.cos(), turn.sin());
            let (hx, hy) = (ux * c - uy * s, ux * s + uy * c);
            (ex - (10.0 * hx) as i32, ey - (10.0 * hy) as i32)
        };
        let base = area.get_base_pixel();
        let shift = |(x, y): (i32, i32)| (x - base.0, y - base.1);
        area.draw(&PathElement::new(
            vec![shift(head(0.45)), shift((ex, ey)), shift(head(-0.45))],
            c.stroke_width(2),
        ))?;
        chart.draw_series([
            Circle::new(a.start, 3, c.filled()),
            Circle::new(a.end, 3, c.filled()),
        ])?;
        for (word, p) in [(&a.from, a.start), (&a.to, a.end)] {
            chart.draw_series(std::iter::once(Text::new(
                word.clone(),
                p,
                (SANS, 14).into_font().color(&BLACK),
            )))?;
        }
    }
    Ok(())
}

fn draw_bars(area: &super::Canvas, bars: &[Bar]) -> PlotResult<()> {
    let n = bars.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption("analogy accuracy per section", (SANS, 20))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(190)
        .build_cartesian_2d(0f32..100f32, 0f32..n as f32)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .light_line_style(WHITE)
        .y_labels(0)
        .x_desc("% of the questions answered (all four words known)")
        .x_label_formatter(&|v| axis_number(*v as f64))
        .label_style((SANS, 13))
        .draw()?;
    let plot = chart.plotting_area();
    for (i, b) in bars.iter().enumerate() {
        // First section at the top.
        let y = (n - 1 - i) as f32;
        let pct = (b.accuracy * 100.0).clamp(0.0, 100.0);
        let colour = sequential(0.35 + 0.5 * b.accuracy.clamp(0.0, 1.0));
        plot.draw(&Rectangle::new(
            [(0.0, y + 0.15), (pct, y + 0.85)],
            colour.filled(),
        ))?;
        plot.draw(&Text::new(
            format!("{pct:.1}% of {}", b.answered),
            (pct + 1.0, y + 0.65),
            (SANS, 12).into_font().color(&BLACK),
        ))?;
        // The section name, right-aligned left of the axis.
        let (px, py) = chart.backend_coord(&(0.0, y + 0.5));
        let style =
            (SANS, 13)
                .into_font()
                .color(&BLACK)
                .pos(plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ));
        area.draw(&Text::new(
            b.label.clone(),
            (
                px - 6 - area.get_base_pixel().0,
                py - area.get_base_pixel().1,
            ),
            style,
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn word_pairs_png_is_written() {
        let dir = std::env::temp_dir().join(format!("kindling-wordpairs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("word_pairs.png");
        let panels = vec![
            ArrowPanel {
                title: "gender".into(),
                arrows: vec![Arrow {
                    from: "man".into(),
                    to: "woman".into(),
                    start: (0.0, 0.0),
                    end: (1.0, 0.5),
                }],
            },
            ArrowPanel {
                title: "capitals (none known)".into(),
                arrows: vec![],
            },
        ];
        let bars = vec![
            Bar {
                label: "capital-common-countries".into(),
                accuracy: 0.5,
                answered: 10,
            },
            Bar {
                label: "family".into(),
                accuracy: 0.0,
                answered: 0,
            },
        ];
        draw_word_pairs(&path, &panels, &bars).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).ok();
    }
}

//! Cosine-similarity matrices side by side (`kindling lab bert`): one row
//! and column per sentence, each cell coloured by the similarity of two
//! vectors and the value written in it. The sentences are labelled down the
//! left of the first matrix (numbered; the columns carry the numbers), with
//! their sense group beside them and a line between groups, so same-sense
//! blocks sit on the diagonal.
//!
//! Every matrix shares one colour scale, from min(0, smallest value) to 1,
//! so a matrix of ones (the static embedding) is uniformly dark.

use super::{
    axis_number, draw_colour_bar, draw_png, family_for, ink_on, sequential, Canvas, PlotResult,
    SANS,
};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const CELL_PX: i32 = 40;
/// Room for the sense names, then the numbered sentences.
const SENSE_PX: i32 = 80;
const LABEL_PX: i32 = 200;
const TOP: i32 = 64;
const GAP: i32 = 36;
const BAR_PX: i32 = 90;
const BOTTOM: i32 = 20;

fn size(n: usize, panels: usize) -> (u32, u32) {
    let grid = CELL_PX * n as i32;
    let w = SENSE_PX + LABEL_PX + panels as i32 * (grid + GAP) + BAR_PX;
    (w as u32, (TOP + grid + BOTTOM) as u32)
}

/// Draws `panels` (title, `n`×`n` row-major similarities) for the `n`
/// sentences `labels`, grouped by `senses` (consecutive equal entries are
/// one group).
pub fn draw_similarity(
    path: &Path,
    labels: &[String],
    senses: &[String],
    panels: &[(String, Vec<f32>)],
) -> PlotResult<()> {
    let n = labels.len();
    if senses.len() != n {
        return Err(format!("{} senses for {n} sentences", senses.len()).into());
    }
    for (title, m) in panels {
        if m.len() != n * n {
            return Err(format!("{title}: {} values for {n} sentences", m.len()).into());
        }
    }
    draw_png(path, size(n, panels.len()), |root| {
        paint(root, labels, senses, panels)
    })
}

fn paint(
    root: &Canvas,
    labels: &[String],
    senses: &[String],
    panels: &[(String, Vec<f32>)],
) -> PlotResult<()> {
    let n = labels.len();
    let grid = CELL_PX * n as i32;
    let lo = panels
        .iter()
        .flat_map(|(_, m)| m.iter().copied())
        .fold(0.0f32, f32::min);
    let shade = |v: f32| (v - lo) / (1.0 - lo).max(1e-6);
    let style = |text: &str, px: f64, pos: Pos| {
        TextStyle::from((family_for(text), px).into_font()).pos(pos)
    };
    // Group boundaries: after row i when the sense changes.
    let breaks: Vec<usize> = (1..n).filter(|&i| senses[i] != senses[i - 1]).collect();
    let left = SENSE_PX + LABEL_PX;
    for (i, label) in labels.iter().enumerate() {
        let y = TOP + i as i32 * CELL_PX + CELL_PX / 2;
        let num = format!("{}", i + 1);
        root.draw(&Text::new(
            num.clone(),
            (left - 6, y),
            style(&num, 12.0, Pos::new(HPos::Right, VPos::Center)),
        ))?;
        root.draw(&Text::new(
            label.clone(),
            (left - 26, y),
            style(label, 15.0, Pos::new(HPos::Right, VPos::Center)),
        ))?;
    }
    let mut start = 0;
    for end in breaks.iter().copied().chain([n]) {
        let y = TOP + ((start + end) as i32 * CELL_PX) / 2;
        let name = &senses[start];
        root.draw(&Text::new(
            name.clone(),
            (6, y),
            style(name, 15.0, Pos::new(HPos::Left, VPos::Center)),
        ))?;
        start = end;
    }
    for (k, (title, m)) in panels.iter().enumerate() {
        let x0 = left + k as i32 * (grid + GAP);
        root.draw(&Text::new(
            title.clone(),
            (x0, 8),
            style(title, 15.0, Pos::new(HPos::Left, VPos::Top)),
        ))?;
        for j in 0..n {
            let num = format!("{}", j + 1);
            root.draw(&Text::new(
                num,
                (x0 + j as i32 * CELL_PX + CELL_PX / 2, TOP - 6),
                TextStyle::from((SANS, 12).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom)),
            ))?;
        }
        for i in 0..n {
            for j in 0..n {
                let v = m[i * n + j];
                let (x, y) = (x0 + j as i32 * CELL_PX, TOP + i as i32 * CELL_PX);
                root.draw(&Rectangle::new(
                    [(x, y), (x + CELL_PX, y + CELL_PX)],
                    sequential(shade(v)).filled(),
                ))?;
                root.draw(&Text::new(
                    format!("{v:.2}"),
                    (x + CELL_PX / 2, y + CELL_PX / 2),
                    TextStyle::from((SANS, 11).into_font())
                        .pos(Pos::new(HPos::Center, VPos::Center))
                        .color(&ink_on(shade(v))),
                ))?;
            }
        }
        for &b in &breaks {
            let at = b as i32 * CELL_PX;
            root.draw(&PathElement::new(
                vec![(x0, TOP + at), (x0 + grid, TOP + at)],
                BLACK.stroke_width(2),
            ))?;
            root.draw(&PathElement::new(
                vec![(x0 + at, TOP), (x0 + at, TOP + grid)],
                BLACK.stroke_width(2),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(x0, TOP), (x0 + grid, TOP + grid)],
            RGBColor(120, 120, 120),
        ))?;
    }
    let ticks: Vec<(f32, String)> = [lo, (lo + 1.0) / 2.0, 1.0]
        .iter()
        .map(|&v| (shade(v), axis_number((v as f64 * 100.0).round() / 100.0)))
        .collect();
    draw_colour_bar(
        root,
        (left + panels.len() as i32 * (grid + GAP) + 4, TOP + 20),
        (16, grid.clamp(60, 300)),
        "cosine",
        &ticks,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::render;

    #[test]
    fn a_matrix_of_ones_is_the_darkest_colour_and_a_zero_the_lightest() {
        let labels: Vec<String> = ["大「道」至简", "他说「道」"].map(String::from).to_vec();
        let senses: Vec<String> = ["道理", "说"].map(String::from).to_vec();
        let panels = vec![
            ("contextual".to_string(), vec![1.0, 0.0, 0.0, 1.0]),
            ("static".to_string(), vec![1.0; 4]),
        ];
        let sz = size(2, 2);
        let px = render(sz, |root| paint(root, &labels, &senses, &panels)).unwrap();
        let at = |x: i32, y: i32| {
            let i = (y as usize * sz.0 as usize + x as usize) * 3;
            (px[i], px[i + 1], px[i + 2])
        };
        let grid = 2 * CELL_PX;
        let x_static = SENSE_PX + LABEL_PX + grid + GAP;
        // A corner of a cell, away from its number.
        let dark = sequential(1.0);
        assert_eq!(
            at(x_static + CELL_PX + 3, TOP + 3),
            (dark.0, dark.1, dark.2)
        );
        let light = sequential(0.0);
        assert_eq!(
            at(SENSE_PX + LABEL_PX + CELL_PX + 3, TOP + 3),
            (light.0, light.1, light.2)
        );
    }

    #[test]
    fn a_matrix_of_the_wrong_size_is_refused_naming_it() {
        let path = std::env::temp_dir().join("kindling-similarity-never-written.png");
        let err = draw_similarity(
            &path,
            &["a".into(), "b".into()],
            &["x".into(), "y".into()],
            &[("static".into(), vec![1.0])],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "static: 1 values for 2 sentences");
    }
}

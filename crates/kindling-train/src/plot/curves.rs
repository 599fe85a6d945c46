//! Line charts: panels of series side by side in one PNG (`curves.png` of
//! every training run, the polyfit demo). A series with a single point is
//! drawn as a marker, since a line through one point draws nothing; an x
//! axis whose values are all whole numbers (epochs, iterations, steps) is
//! labelled with whole numbers only; the legend goes in the corner with the
//! fewest points under it.

use super::{axis_number, render, write_png, PlotResult, SANS};
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf32;
use plotters::prelude::*;
use std::path::Path;

pub struct Series<'a> {
    pub label: &'a str,
    pub points: Vec<(f32, f32)>,
    pub color: RGBColor,
    /// Draw dots instead of a line (for samples).
    pub dots: bool,
}

impl<'a> Series<'a> {
    /// A line of `points`.
    pub fn line(label: &'a str, points: Vec<(f32, f32)>, color: RGBColor) -> Series<'a> {
        Series {
            label,
            points,
            color,
            dots: false,
        }
    }

    /// Markers rather than a line: asked for, or a line would be invisible.
    fn as_markers(&self) -> bool {
        self.dots || self.points.len() == 1
    }
}

pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
    pub log_y: bool,
}

impl Panel<'_> {
    /// The points the chart shows (a log axis cannot show y ≤ 0).
    fn shown(&self) -> impl Iterator<Item = (f32, f32)> + '_ {
        let log_y = self.log_y;
        self.series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(move |&(x, y)| x.is_finite() && y.is_finite() && (!log_y || y > 0.0))
    }

    /// Every x is a whole number: epochs, iterations, steps.
    fn whole_x(&self) -> bool {
        let mut xs = self.shown().map(|p| p.0).peekable();
        xs.peek().is_some() && xs.all(|x| x == x.round())
    }

    /// The axis ranges: x padded by half a step around a lone value, y by 5%
    /// (linear) or to at least a factor of four (log) so one value is not
    /// drawn on the frame.
    fn bounds(&self) -> ((f32, f32), (f32, f32)) {
        let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for (x, y) in self.shown() {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x0 > x1 {
            // Nothing to show yet: an empty frame.
            (x0, x1, y0, y1) = (0.0, 1.0, if self.log_y { 0.1 } else { 0.0 }, 1.0);
        }
        if x0 == x1 {
            (x0, x1) = (x0 - 0.5, x1 + 0.5);
        }
        if self.log_y {
            let (lo, hi) = (y0 * 0.8, y1 * 1.25);
            if hi / lo < 4.0 {
                let mid = (lo * hi).sqrt();
                return ((x0, x1), (mid / 2.0, mid * 2.0));
            }
            return ((x0, x1), (lo, hi));
        }
        if y0 == y1 {
            let d = (y0.abs() * 0.02).max(0.5);
            (y0, y1) = (y0 - d, y1 + d);
        }
        let pad = (y1 - y0) * 0.05;
        ((x0, x1), (y0 - pad, y1 + pad))
    }

    /// The corner of the plot with the fewest points in a box the size of
    /// the legend, so the legend covers as little data as possible.
    /// `to_unit` maps a point to [0, 1]² of the plot area (y up).
    fn legend_corner(&self, to_unit: impl Fn((f32, f32)) -> (f32, f32)) -> SeriesLabelPosition {
        // The legend box, as a fraction of the plot area.
        let (w, h) = (
            0.4,
            0.08 + 0.07 * self.series.iter().filter(|s| !s.label.is_empty()).count() as f32,
        );
        let corners = [
            (SeriesLabelPosition::UpperRight, 1.0 - w, 1.0, 1.0 - h, 1.0),
            (SeriesLabelPosition::UpperLeft, 0.0, w, 1.0 - h, 1.0),
            (SeriesLabelPosition::LowerRight, 1.0 - w, 1.0, 0.0, h),
            (SeriesLabelPosition::LowerLeft, 0.0, w, 0.0, h),
        ];
        let covered = |&(_, x0, x1, y0, y1): &(SeriesLabelPosition, f32, f32, f32, f32)| {
            self.shown()
                .map(&to_unit)
                .filter(|&(x, y)| (x0..=x1).contains(&x) && (y0..=y1).contains(&y))
                .count()
        };
        // min_by_key keeps the first of equals: upper right unless it covers more.
        let best = corners.iter().min_by_key(|c| covered(c));
        best.map_or(SeriesLabelPosition::UpperRight, |c| c.0.clone())
    }
}

/// The label of an x tick: whole numbers only on a whole-number axis.
fn x_tick(v: f32, whole: bool) -> String {
    if whole && v != v.round() {
        String::new()
    } else {
        axis_number(v as f64)
    }
}

fn draw_panel(area: &super::Canvas, panel: &Panel) -> PlotResult<()> {
    let ((x0, x1), (y0, y1)) = panel.bounds();
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(panel.title, (SANS, 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    let unit_x = move |x: f32| (x - x0) / (x1 - x0);
    if panel.log_y {
        let (l0, l1) = (y0.ln(), y1.ln());
        let corner = panel.legend_corner(|(x, y)| (unit_x(x), (y.ln() - l0) / (l1 - l0)));
        let chart = builder.build_cartesian_2d(x0..x1, (y0..y1).log_scale())?;
        draw_series(chart, panel, corner)
    } else {
        let corner = panel.legend_corner(|(x, y)| (unit_x(x), (y - y0) / (y1 - y0)));
        let chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
        draw_series(chart, panel, corner)
    }
}

/// The mesh, the series and the legend, on a linear or a log y axis.
fn draw_series<'a, Y>(
    mut chart: ChartContext<'a, BitMapBackend<'a>, Cartesian2d<RangedCoordf32, Y>>,
    panel: &Panel,
    corner: SeriesLabelPosition,
) -> PlotResult<()>
where
    Y: Ranged<ValueType = f32> + ValueFormatter<f32>,
    Y: AsRangedCoord<CoordDescType = Y, Value = f32>,
{
    let whole = panel.whole_x();
    let (x0, x1) = (chart.x_range().start, chart.x_range().end);
    // At most one label per whole number on a whole-number axis.
    let x_labels = if whole {
        ((x1 - x0).floor() as usize + 1).clamp(2, 10)
    } else {
        10
    };
    chart
        .configure_mesh()
        .x_desc(panel.x_label)
        .y_desc(panel.y_label)
        .x_labels(x_labels)
        // plotters puts ten ticks per decade on a log axis by default,
        // crowding their labels; five in all read cleanly.
        .y_labels(if panel.log_y { 5 } else { 10 })
        .x_label_formatter(&|v| x_tick(*v, whole))
        .y_label_formatter(&|v| axis_number(*v as f64))
        .label_style((SANS, 14))
        .draw()?;
    for s in &panel.series {
        let color = s.color;
        let points = s
            .points
            .iter()
            .copied()
            .filter(|&(x, y)| x.is_finite() && y.is_finite() && (!panel.log_y || y > 0.0));
        // A series without a label (a fitted curve beside its data) stays out of the legend.
        if s.as_markers() {
            let radius = if s.dots { 3 } else { 4 };
            let drawn =
                chart.draw_series(points.map(|p| Circle::new(p, radius, color.filled())))?;
            if !s.label.is_empty() {
                drawn
                    .label(s.label)
                    .legend(move |(x, y)| Circle::new((x + 10, y), radius, color.filled()));
            }
        } else {
            let drawn = chart.draw_series(LineSeries::new(points, color.stroke_width(2)))?;
            if !s.label.is_empty() {
                drawn.label(s.label).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
        }
    }
    chart
        .configure_series_labels()
        .position(corner)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font((SANS, 14))
        .draw()?;
    Ok(())
}

/// The size of a picture of `panels` side by side.
fn panels_size(panels: &[Panel]) -> (u32, u32) {
    (640 * panels.len().max(1) as u32, 480)
}

fn render_panels(panels: &[Panel]) -> PlotResult<Vec<u8>> {
    render(panels_size(panels), |root| {
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, panel)?;
        }
        Ok(())
    })
}

/// Panels side by side in one PNG, written atomically.
pub fn save_panels(path: &Path, panels: &[Panel]) -> PlotResult<()> {
    let pixels = render_panels(panels)?;
    write_png(path, &pixels, panels_size(panels))?;
    Ok(())
}

/// `(x, y)` points from metric records that have both keys (numbers).
pub fn points(metrics: &[serde_json::Value], x: &str, y: &str) -> Vec<(f32, f32)> {
    metrics
        .iter()
        .filter_map(|m| Some((m[x].as_f64()? as f32, m[y].as_f64()? as f32)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pixels of exactly `color` in the picture.
    fn count(pixels: &[u8], color: RGBColor) -> usize {
        pixels
            .chunks(3)
            .filter(|p| p == &[color.0, color.1, color.2])
            .count()
    }

    fn one_epoch(log_y: bool) -> Panel<'static> {
        Panel {
            title: "Loss",
            x_label: "epoch",
            y_label: "cross-entropy",
            series: vec![
                Series::line("train", vec![(1.0, 0.31)], BLUE),
                Series::line("validation", vec![(1.0, 0.12)], RED),
            ],
            log_y,
        }
    }

    #[test]
    fn a_one_point_series_is_drawn_as_a_marker() {
        for log_y in [true, false] {
            let px = render_panels(&[one_epoch(log_y)]).unwrap();
            // Each marker is a filled disc of radius 4 (about 50 pixels);
            // the legend adds one more of each colour.
            assert!(count(&px, BLUE) > 60, "log_y {log_y}: {}", count(&px, BLUE));
            assert!(count(&px, RED) > 60, "log_y {log_y}: {}", count(&px, RED));
        }
    }

    #[test]
    fn a_lone_x_value_is_centred_and_its_axis_is_whole_numbers() {
        let panel = one_epoch(false);
        assert!(panel.whole_x());
        let ((x0, x1), (y0, y1)) = panel.bounds();
        assert_eq!((x0, x1), (0.5, 1.5));
        assert!(y0 < 0.12 && y1 > 0.31);
        assert_eq!(x_tick(1.0, true), "1");
        assert_eq!(x_tick(1.5, true), "");
        assert_eq!(x_tick(1.5, false), "1.5");
    }

    #[test]
    fn a_log_axis_around_one_value_spans_a_factor_of_four() {
        let panel = Panel {
            series: vec![Series::line("train", vec![(1.0, 2.0)], BLUE)],
            ..one_epoch(true)
        };
        let (_, (y0, y1)) = panel.bounds();
        assert!(y0 < 2.0 && y1 > 2.0 && (y1 / y0 - 4.0).abs() < 1e-4);
    }

    #[test]
    fn the_legend_goes_to_a_corner_without_points() {
        // Samples of sin(πx) on [-1, 1]: high on the right half, low on the
        // left, so the upper left and lower right corners are empty.
        let samples: Vec<(f32, f32)> = (0..=40)
            .map(|i| {
                let x = -1.0 + i as f32 / 20.0;
                (x, (std::f32::consts::PI * x).sin())
            })
            .collect();
        let panel = Panel {
            title: "fit",
            x_label: "x",
            y_label: "y",
            series: vec![Series::line("sin", samples, GREEN)],
            log_y: false,
        };
        let corner = panel.legend_corner(|(x, y)| ((x + 1.0) / 2.0, (y + 1.0) / 2.0));
        assert!(
            matches!(
                corner,
                SeriesLabelPosition::UpperLeft | SeriesLabelPosition::LowerRight
            ),
            "{corner:?}"
        );
    }

    #[test]
    fn an_empty_panel_still_draws() {
        let panel = Panel {
            series: vec![Series::line("train", Vec::new(), BLUE)],
            ..one_epoch(true)
        };
        render_panels(&[panel]).unwrap();
    }
}

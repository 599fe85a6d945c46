//! Attention matrices as heatmaps: row = query position, column = key
//! position, the characters written along both axes; several heads side by
//! side in a grid.

use crate::plot::{register_font, PlotResult};
use plotters::prelude::*;
use std::path::Path;

pub fn draw(path: &Path, chars: &[String], matrices: &[(String, Vec<f32>)]) -> PlotResult<()> {
    register_font();
    let t = chars.len();
    let cols = (matrices.len() as f64).sqrt().ceil() as usize;
    let rows = matrices.len().div_ceil(cols.max(1));
    let cell = (480 / t.max(1)).clamp(8, 28) as u32;
    let side = cell * t as u32 + 90;
    let size: (u32, u32) = (side * cols as u32, (side + 10) * rows as u32);
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE)?;
        for (area, (title, m)) in root.split_evenly((rows, cols)).iter().zip(matrices) {
            // DejaVu has no CJK glyphs: switch the labels to the CJK font when needed.
            let cjk = chars
                .iter()
                .flat_map(|c| c.chars())
                .any(|c| !c.is_ascii() && c != '⏎' && c != '␣');
            let family = if cjk { "cjk" } else { "sans-serif" };
            // The CJK font lacks the ⏎/␣ symbols: spell them in ASCII there.
            let shown: Vec<String> = chars
                .iter()
                .map(|c| match (cjk, c.as_str()) {
                    (true, "⏎") => "\\n".to_string(),
                    (true, "␣") => "_".to_string(),
                    _ => c.clone(),
                })
                .collect();
            let chars = &shown;
            let font = (family, (cell as f64 * 0.7).clamp(9.0, 16.0));
            let mut chart = ChartBuilder::on(area)
                .caption(title, ("sans-serif", 16))
                .margin(6)
                .x_label_area_size(30)
                .y_label_area_size(30)
                .build_cartesian_2d(
                    (0..t as i32 - 1).into_segmented(),
                    (0..t as i32 - 1).into_segmented(),
                )?;
            // Segmented axes put each label at the centre of its cell.
            let at = |v: &SegmentValue<i32>| -> Option<usize> {
                match v {
                    SegmentValue::CenterOf(i) if (*i as usize) < t => Some(*i as usize),
                    _ => None,
                }
            };
            let label = |v: &SegmentValue<i32>| {
                at(v)
                    .and_then(|i| chars.get(i).cloned())
                    .unwrap_or_default()
            };
            let flip = |v: &SegmentValue<i32>| {
                at(v)
                    .and_then(|i| chars.get(t - 1 - i).cloned())
                    .unwrap_or_default()
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(t)
                .y_labels(t)
                .x_label_formatter(&label)
                .y_label_formatter(&flip)
                .x_label_style(font)
                .y_label_style(font)
                .draw()?;
            chart.draw_series(
                (0..t)
                    .flat_map(|i| (0..t).map(move |j| (i, j)))
                    .map(|(i, j)| {
                        // Darker = more attention; the upper triangle is masked (white).
                        let p = m[i * t + j].clamp(0.0, 1.0).sqrt();
                        let shade = (255.0 * (1.0 - p)) as u8;
                        let (x, y) = (j as i32, (t - 1 - i) as i32);
                        Rectangle::new(
                            [
                                (SegmentValue::Exact(x), SegmentValue::Exact(y)),
                                (SegmentValue::Exact(x + 1), SegmentValue::Exact(y + 1)),
                            ],
                            RGBColor(shade, shade, 255 - (p * 80.0) as u8).filled(),
                        )
                    }),
            )?;
        }
        root.present()?;
    }
    crate::plot::write_png(path, &pixels, size)?;
    Ok(())
}

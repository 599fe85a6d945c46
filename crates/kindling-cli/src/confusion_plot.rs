//! The confusion matrix as a heatmap PNG.

use crate::report::CliResult;
use plotters::prelude::*;
use std::path::Path;

pub fn draw(path: &Path, confusion: &[Vec<usize>]) -> CliResult<()> {
    kindling_train::plot::register_font();
    let n = confusion.len();
    let size: (u32, u32) = (620, 620);
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Confusion matrix (rows: true, columns: predicted)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(40)
            .build_cartesian_2d(
                (0..n as i32 - 1).into_segmented(),
                (0..n as i32 - 1).into_segmented(),
            )?;
        // Segmented axes: each digit labels the centre of its column/row;
        // rows run top to bottom from digit 0.
        let digit = |v: &SegmentValue<i32>, flip: bool| match v {
            SegmentValue::CenterOf(i) if (*i as usize) < n => (if flip {
                n - 1 - *i as usize
            } else {
                *i as usize
            })
            .to_string(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
            .x_label_formatter(&|v| digit(v, false))
            .y_label_formatter(&|v| digit(v, true))
            .x_desc("predicted")
            .y_desc("true")
            .label_style(("sans-serif", 14))
            .draw()?;
        for (t, row) in confusion.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f64;
            for (p, &count) in row.iter().enumerate() {
                let frac = count as f64 / total;
                // Diagonal in blue, mistakes in red; log scale so a few errors show.
                let shade = if count == 0 {
                    0.0
                } else {
                    (1.0 + 9.0 * frac).log10() * 0.8 + 0.2
                };
                let color = if t == p {
                    RGBColor(
                        255 - (shade * 200.0) as u8,
                        255 - (shade * 120.0) as u8,
                        255,
                    )
                } else {
                    RGBColor(
                        255,
                        255 - (shade * 200.0) as u8,
                        255 - (shade * 200.0) as u8,
                    )
                };
                let y = (n - 1 - t) as i32;
                let (x0, y0) = (SegmentValue::Exact(p as i32), SegmentValue::Exact(y));
                let (x1, y1) = (
                    SegmentValue::Exact(p as i32 + 1),
                    SegmentValue::Exact(y + 1),
                );
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0.clone(), y0), (x1, y1.clone())],
                    color.filled(),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!(" {count}"),
                    (x0, y1),
                    ("sans-serif", 12),
                )))?;
            }
        }
        root.present()?;
    }
    kindling_train::plot::write_png(path, &pixels, size)?;
    Ok(())
}

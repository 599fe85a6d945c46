//! The confusion matrix as a heatmap PNG.

use crate::report::CliResult;
use plotters::prelude::*;
use std::path::Path;

pub fn draw(path: &Path, confusion: &[Vec<usize>]) -> CliResult<()> {
    kindling_train::plot::register_font();
    let n = confusion.len();
    let tmp = path.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (620, 620)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Confusion matrix (rows: true, columns: predicted)",
                ("sans-serif", 18),
            )
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(30)
            .build_cartesian_2d(0..n as i32, 0..n as i32)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(n)
            .y_labels(n)
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
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(p as i32, y), (p as i32 + 1, y + 1)],
                    color.filled(),
                )))?;
                chart.draw_series(std::iter::once(Text::new(
                    format!("{count}"),
                    (p as i32, y + 1),
                    ("sans-serif", 12),
                )))?;
            }
        }
        root.present()?;
    }
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(())
}

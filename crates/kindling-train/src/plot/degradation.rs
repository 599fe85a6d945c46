//! `degradation.png` of `kindling lab resnet`, drawn as He et al. 2016's
//! figure 6: training error (%) against the epoch, the plain networks on
//! the left and the residual ones on the right, one line per depth from
//! light (shallow) to dark (deep). Each depth's test error per epoch is a
//! row of dots in the same colour.

use super::curves::{save_panels, Panel, Series};
use super::{sequential, PlotResult};
use std::path::Path;

/// One network's curves: its depth, training and test error (fractions)
/// per epoch.
pub struct ErrorCurves {
    pub depth: usize,
    pub train_errors: Vec<f64>,
    pub test_errors: Vec<f64>,
}

fn percent_by_epoch(errors: &[f64]) -> Vec<(f32, f32)> {
    errors
        .iter()
        .enumerate()
        .map(|(e, v)| ((e + 1) as f32, (v * 100.0) as f32))
        .collect()
}

/// Draws the plain (left) and residual (right) panels; a variant with no
/// runs is left out.
pub fn draw_degradation(
    path: &Path,
    plain: &[ErrorCurves],
    residual: &[ErrorCurves],
) -> PlotResult<()> {
    let depths: Vec<usize> = {
        let mut d: Vec<usize> = plain.iter().chain(residual).map(|c| c.depth).collect();
        d.sort_unstable();
        d.dedup();
        d
    };
    // The same colour for a depth in both panels.
    let colour = |depth: usize| {
        let i = depths.iter().position(|&d| d == depth).unwrap_or(0);
        let t = if depths.len() > 1 {
            0.35 + 0.65 * i as f32 / (depths.len() - 1) as f32
        } else {
            1.0
        };
        sequential(t)
    };
    let labels: Vec<(String, String)> = plain
        .iter()
        .map(|c| {
            (
                format!("plain-{} train", c.depth),
                format!("plain-{} test", c.depth),
            )
        })
        .chain(residual.iter().map(|c| {
            (
                format!("ResNet-{} train", c.depth),
                format!("ResNet-{} test", c.depth),
            )
        }))
        .collect();
    let mut labels = labels.iter();
    let mut panel = |title: &'static str, runs: &[ErrorCurves]| {
        let mut series = Vec::new();
        for c in runs {
            let (train, test) = labels.next().expect("a label pair per run");
            series.push(Series::line(
                train,
                percent_by_epoch(&c.train_errors),
                colour(c.depth),
            ));
            series.push(Series {
                dots: true,
                ..Series::line(test, percent_by_epoch(&c.test_errors), colour(c.depth))
            });
        }
        Panel {
            title,
            x_label: "epoch",
            y_label: "error (%): lines training, dots test",
            series,
            log_y: false,
        }
    };
    let mut panels = Vec::new();
    if !plain.is_empty() {
        panels.push(panel("plain (no shortcuts)", plain));
    }
    if !residual.is_empty() {
        panels.push(panel("residual (shortcuts, option A)", residual));
    }
    save_panels(path, &panels)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degradation_png_is_written_with_two_panels() {
        let dir = std::env::temp_dir().join(format!("kindling-degradation-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("degradation.png");
        let curves = |depth| ErrorCurves {
            depth,
            train_errors: vec![0.5, 0.3, 0.2],
            test_errors: vec![0.45, 0.32, 0.25],
        };
        draw_degradation(&path, &[curves(8), curves(20)], &[curves(8), curves(20)]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        // Two 640-pixel panels side by side (the PNG header's width).
        assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 1280);
        std::fs::remove_dir_all(&dir).ok();
    }
}

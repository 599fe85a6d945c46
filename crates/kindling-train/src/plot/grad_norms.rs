//! `grad_norms.png` of `kindling lab gradients`: each hidden layer's
//! gradient norm against the training step, on a log axis, one line per
//! layer from light (the first hidden layer) to dark (the last). One
//! mini-batch's norm is noisy, so each line shows means over windows of
//! consecutive records (about 100 windows per run). A deep network would
//! give an unreadable bundle of lines, so at most [`MAX_LINES`] layers are
//! drawn: the first, the last and evenly spaced ones between.

use super::curves::{save_panels, Panel, Series};
use super::{sequential, PlotResult};
use std::path::Path;

/// Layers drawn at most.
pub const MAX_LINES: usize = 6;

/// The layers drawn for a network of `depth` hidden layers (0-based).
pub fn shown_layers(depth: usize) -> Vec<usize> {
    if depth <= MAX_LINES {
        return (0..depth).collect();
    }
    let mut layers: Vec<usize> = (0..MAX_LINES)
        .map(|i| (i * (depth - 1) + (MAX_LINES - 1) / 2) / (MAX_LINES - 1))
        .collect();
    layers.dedup();
    layers
}

/// Means of `values` over windows of `window` consecutive records, each at
/// its window's mean step.
fn window_means(steps: &[usize], values: &[f32], window: usize) -> Vec<(f32, f32)> {
    steps
        .chunks(window)
        .zip(values.chunks(window))
        .map(|(s, v)| {
            let n = s.len() as f32;
            (
                s.iter().map(|&x| x as f32).sum::<f32>() / n,
                v.iter().sum::<f32>() / n,
            )
        })
        .collect()
}

/// Draws `norms[l][i]` (layer `l`, the record at `steps[i]`) to `path`.
pub fn draw_grad_norms(
    path: &Path,
    title: &str,
    steps: &[usize],
    norms: &[Vec<f32>],
) -> PlotResult<()> {
    let depth = norms.len();
    let window = steps.len().div_ceil(100).max(1);
    let layers = shown_layers(depth);
    let labels: Vec<String> = layers
        .iter()
        .map(|&l| format!("hidden layer {}", l + 1))
        .collect();
    let series = layers
        .iter()
        .zip(&labels)
        .map(|(&l, label)| {
            // Light to dark, never so light that the line vanishes on white.
            let t = if depth > 1 {
                0.3 + 0.7 * l as f32 / (depth - 1) as f32
            } else {
                1.0
            };
            Series::line(label, window_means(steps, &norms[l], window), sequential(t))
        })
        .collect();
    let y_label = if window > 1 {
        format!("gradient norm (mean of {window} steps)")
    } else {
        "gradient norm".to_string()
    };
    let panel = Panel {
        title,
        x_label: "step",
        y_label: &y_label,
        series,
        log_y: true,
    };
    save_panels(path, &[panel])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deep_network_shows_its_first_and_last_layers_and_a_few_between() {
        assert_eq!(shown_layers(4), vec![0, 1, 2, 3]);
        let twenty = shown_layers(20);
        assert_eq!(twenty.len(), MAX_LINES);
        assert_eq!(twenty.first(), Some(&0));
        assert_eq!(twenty.last(), Some(&19));
        assert!(twenty.windows(2).all(|w| w[0] < w[1]), "{twenty:?}");
    }

    #[test]
    fn window_means_average_steps_and_values() {
        let m = window_means(&[0, 1, 2, 3, 4], &[1.0, 3.0, 5.0, 7.0, 9.0], 2);
        assert_eq!(m, vec![(0.5, 2.0), (2.5, 6.0), (4.0, 9.0)]);
    }

    #[test]
    fn grad_norms_png_is_written() {
        let dir = std::env::temp_dir().join(format!("kindling-gradnorms-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("grad_norms.png");
        let steps: Vec<usize> = (0..300).collect();
        let norms: Vec<Vec<f32>> = (0..4)
            .map(|l| steps.iter().map(|_| 10f32.powi(l - 3)).collect())
            .collect();
        draw_grad_norms(&path, "test", &steps, &norms).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).ok();
    }
}

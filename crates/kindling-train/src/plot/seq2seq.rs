//! `accuracy.png` of `kindling lab seq2seq`: held-out accuracy against the
//! sequence length, the plain encoder–decoder beside the one with
//! attention. Left: per-token accuracy (the plotted measure; chance,
//! 1/symbols, drawn grey); right: exact-sequence accuracy (every token
//! right).

use super::curves::{save_panels, Panel, Series};
use super::PlotResult;
use plotters::style::RGBColor;
use std::path::Path;

/// Both models' accuracies at each length, as fractions.
pub struct AccuracyLines {
    pub lengths: Vec<usize>,
    pub plain_token: Vec<f64>,
    pub attention_token: Vec<f64>,
    pub plain_sequence: Vec<f64>,
    pub attention_sequence: Vec<f64>,
    pub chance_token: f64,
}

const PLAIN: RGBColor = RGBColor(214, 96, 77);
const ATTENTION: RGBColor = RGBColor(33, 113, 181);
const CHANCE: RGBColor = RGBColor(160, 160, 160);

fn percent_points(lengths: &[usize], values: &[f64]) -> Vec<(f32, f32)> {
    lengths
        .iter()
        .zip(values)
        .map(|(&l, &v)| (l as f32, (v * 100.0) as f32))
        .collect()
}

pub fn draw_accuracy_vs_length(path: &Path, title: &str, a: &AccuracyLines) -> PlotResult<()> {
    let n = a.lengths.len();
    for (what, v) in [
        ("plain token", &a.plain_token),
        ("attention token", &a.attention_token),
        ("plain sequence", &a.plain_sequence),
        ("attention sequence", &a.attention_sequence),
    ] {
        if v.len() != n {
            return Err(format!("{what} accuracy: {} values for {n} lengths", v.len()).into());
        }
    }
    let (lo, hi) = (
        *a.lengths.iter().min().unwrap_or(&0),
        *a.lengths.iter().max().unwrap_or(&0),
    );
    let chance = (a.chance_token * 100.0) as f32;
    let token_title = format!("{title}: token accuracy");
    let left = Panel {
        title: &token_title,
        x_label: "sequence length",
        y_label: "held-out token accuracy (%)",
        series: vec![
            Series::line("plain", percent_points(&a.lengths, &a.plain_token), PLAIN),
            Series::line(
                "attention",
                percent_points(&a.lengths, &a.attention_token),
                ATTENTION,
            ),
            Series::line(
                "chance",
                vec![(lo as f32, chance), (hi as f32, chance)],
                CHANCE,
            ),
        ],
        log_y: false,
    };
    let right = Panel {
        title: "exact-sequence accuracy",
        x_label: "sequence length",
        y_label: "held-out sequences all right (%)",
        series: vec![
            Series::line(
                "plain",
                percent_points(&a.lengths, &a.plain_sequence),
                PLAIN,
            ),
            Series::line(
                "attention",
                percent_points(&a.lengths, &a.attention_sequence),
                ATTENTION,
            ),
        ],
        log_y: false,
    };
    save_panels(path, &[left, right])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> AccuracyLines {
        AccuracyLines {
            lengths: vec![5, 10, 20, 40, 80],
            plain_token: vec![1.0, 0.9, 0.5, 0.2, 0.12],
            attention_token: vec![1.0; 5],
            plain_sequence: vec![1.0, 0.5, 0.0, 0.0, 0.0],
            attention_sequence: vec![1.0; n],
            chance_token: 0.1,
        }
    }

    #[test]
    fn accuracy_png_is_written() {
        let dir =
            std::env::temp_dir().join(format!("kindling-seq2seq-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("accuracy.png");
        draw_accuracy_vs_length(&path, "reverse", &lines(5)).unwrap();
        assert_eq!(&std::fs::read(&path).unwrap()[1..4], b"PNG");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn mismatched_lines_are_refused() {
        let path = std::env::temp_dir().join("kindling-seq2seq-never-written.png");
        let e = draw_accuracy_vs_length(&path, "t", &lines(4))
            .unwrap_err()
            .to_string();
        assert!(e.contains("attention sequence"), "{e}");
        assert!(!path.exists());
    }
}

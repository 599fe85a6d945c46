//! The FGSM examples figure: for one image of each digit, the original,
//! the perturbation and the adversarial image at every ε, each captioned
//! with what the model predicts. The attack itself is in `crate::fgsm`.

use super::{draw_png, PlotResult};
use crate::fgsm::Example;
use plotters::prelude::*;
use std::path::Path;

const CELL_PX: i32 = 84;
const LABEL_W: i32 = 190;
const CAPTION_H: i32 = 20;
const GAP: i32 = 12;

/// Rows: original; the perturbation at the largest ε, (x_adv − x) / ε so that
/// +ε is white, −ε black and 0 mid-grey (clamping at 0 and 1 shows as grey);
/// then the adversarial image at each ε. Each image is captioned with the
/// predicted digit and its probability, green when right and red when wrong.
/// `title` names the model (and the model the gradient came from).
pub fn draw_examples(
    path: &Path,
    title: &str,
    eps: &[f32],
    examples: &[Example],
    side: usize,
) -> PlotResult<()> {
    let cols = examples.len().max(1) as i32;
    let rows = 2 + eps.len() as i32;
    let row_h = CELL_PX + CAPTION_H + GAP;
    let width = LABEL_W + cols * (CELL_PX + GAP) + GAP;
    let top = 64;
    let height = top + rows * row_h + 10;
    let size: (u32, u32) = (width as u32, height as u32);
    draw_png(path, size, |root| {
        root.draw(&Text::new(title, (10, 10), ("sans-serif", 17)))?;
        root.draw(&Text::new(
            "x_adv = clamp(x + ε·sign(∇x loss), 0, 1); caption = predicted digit (confidence), green when right",
            (10, 34),
            ("sans-serif", 14),
        ))?;
        let last_eps = eps.last().copied().unwrap_or(1.0);
        let mut row_titles = vec![
            ("original".to_string(), String::new()),
            (
                "perturbation".to_string(),
                format!("(x_adv − x)/ε at ε = {last_eps}\nwhite +ε, black −ε, grey 0"),
            ),
        ];
        row_titles.extend(
            eps.iter()
                .map(|e| (format!("adversarial ε = {e}"), String::new())),
        );
        for (r, (title, sub)) in row_titles.iter().enumerate() {
            let y = top + r as i32 * row_h + CAPTION_H;
            root.draw(&Text::new(
                title.as_str(),
                (10, y + CELL_PX / 2 - 16),
                ("sans-serif", 15),
            ))?;
            for (k, line) in sub.lines().enumerate() {
                root.draw(&Text::new(
                    line,
                    (10, y + CELL_PX / 2 + 4 + 17 * k as i32),
                    ("sans-serif", 13),
                ))?;
            }
        }
        let scale = CELL_PX / side as i32;
        for (c, ex) in examples.iter().enumerate() {
            let x = LABEL_W + c as i32 * (CELL_PX + GAP);
            let cell = |r: i32| (x, top + r * row_h + CAPTION_H);
            let caption = |r: i32, (pred, p): (usize, f32)| -> PlotResult<()> {
                let color = if pred == ex.label {
                    RGBColor(0, 120, 0)
                } else {
                    RGBColor(200, 0, 0)
                };
                root.draw(&Text::new(
                    format!("{pred} ({:.0}%)", p * 100.0),
                    (x + 6, top + r * row_h + 2),
                    ("sans-serif", 15).into_font().color(&color),
                ))?;
                Ok(())
            };
            draw_grey(root, cell(0), scale, side, &ex.original, |v| v)?;
            caption(0, ex.clean)?;
            if let Some((adv, _)) = ex.attacked.last() {
                let delta: Vec<f32> = adv
                    .iter()
                    .zip(&ex.original)
                    .map(|(a, o)| (a - o) / last_eps)
                    .collect();
                draw_grey(root, cell(1), scale, side, &delta, |v| 0.5 + 0.5 * v)?;
            }
            for (k, (adv, pred)) in ex.attacked.iter().enumerate() {
                let r = 2 + k as i32;
                draw_grey(root, cell(r), scale, side, adv, |v| v)?;
                caption(r, *pred)?;
            }
        }
        Ok(())
    })
}

/// A `side`×`side` image as `scale`-pixel grey squares; `shade` maps a value
/// to [0, 1] (0 black, 1 white).
fn draw_grey<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    (x0, y0): (i32, i32),
    scale: i32,
    side: usize,
    values: &[f32],
    shade: impl Fn(f32) -> f32,
) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    for (i, &v) in values.iter().enumerate() {
        let g = (shade(v).clamp(0.0, 1.0) * 255.0).round() as u8;
        let (r, c) = ((i / side) as i32, (i % side) as i32);
        let (x, y) = (x0 + c * scale, y0 + r * scale);
        area.draw(&Rectangle::new(
            [(x, y), (x + scale, y + scale)],
            RGBColor(g, g, g).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [
            (x0 - 1, y0 - 1),
            (x0 + side as i32 * scale, y0 + side as i32 * scale),
        ],
        RGBColor(160, 160, 160),
    ))?;
    Ok(())
}

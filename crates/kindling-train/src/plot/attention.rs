//! Attention matrices as heatmaps (`kindling gpt attention`): row = query
//! position, column = key position, the tokens written along both axes;
//! several heads side by side in a grid, one colour bar for all of them.
//!
//! The colour is √p on the sequential scale: most weights are small, and
//! the square root spreads them out; the bar's ticks are in p.
//! Whitespace tokens are labelled with a visible symbol, and each label is
//! written in the font that has its glyphs (DejaVu for Latin and symbols,
//! the CJK font for Chinese), so no label is drawn as empty boxes.

use super::SANS;
use super::{draw_colour_bar, draw_png, family_for, font_has, sequential, Canvas, PlotResult};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Room left of and below each grid for the token labels.
const LABEL_PX: i32 = 30;
const CAPTION_PX: i32 = 26;
const GAP_PX: i32 = 16;
/// Room right of the heads for the colour bar and its labels.
const BAR_PX: i32 = 90;

/// A token as its axis label: newline, tab and space become symbols the
/// Latin font has (the first of each list it covers), anything else is
/// itself.
pub(crate) fn visible_token(token: &str) -> String {
    let choices: &[&str] = match token {
        "\n" => &["↵", "⏎", "\\n"],
        "\t" => &["⇥", "→", "\\t"],
        " " => &["␣", "_"],
        "\r" => &["\\r"],
        _ => return token.to_string(),
    };
    let shown = choices
        .iter()
        .find(|s| s.chars().all(|c| font_has(SANS, c)));
    shown.unwrap_or(&choices[choices.len() - 1]).to_string()
}

/// The cell size for `t` tokens: the grid about 480 pixels wide.
fn cell_px(t: usize) -> i32 {
    (480 / t.max(1) as i32).clamp(8, 28)
}

/// For `heads` grids of `tr` query rows × `tc` key columns: the grid
/// columns and rows, one grid's width with its margins, and the picture's
/// size.
fn layout(tr: usize, tc: usize, heads: usize) -> (usize, usize, i32, (u32, u32)) {
    let cols = (heads as f64).sqrt().ceil().max(1.0) as usize;
    let rows = heads.div_ceil(cols).max(1);
    let cell = cell_px(tr.max(tc));
    let side = LABEL_PX + cell * tc as i32 + GAP_PX;
    let head_h = CAPTION_PX + cell * tr as i32 + LABEL_PX + GAP_PX;
    let size = (
        (side * cols as i32 + BAR_PX) as u32,
        (head_h * rows as i32 + 10) as u32,
    );
    (cols, rows, side, size)
}

/// Draws `matrices` (title, `t`×`t` row-major probabilities), one per head,
/// with `tokens` (as decoded, whitespace included) along the axes.
pub fn draw(path: &Path, tokens: &[String], matrices: &[(String, Vec<f32>)]) -> PlotResult<()> {
    draw_with_axes(path, tokens, tokens, matrices)
}

/// As [`draw`], for attention from one sequence to another (an
/// encoder–decoder's output steps attending to source positions): `rows`
/// label the queries down the left, `columns` the keys along the bottom;
/// each matrix is `rows.len()` × `columns.len()`, row-major.
pub fn draw_with_axes(
    path: &Path,
    rows: &[String],
    columns: &[String],
    matrices: &[(String, Vec<f32>)],
) -> PlotResult<()> {
    let (tr, tc) = (rows.len(), columns.len());
    for (title, m) in matrices {
        if m.len() != tr * tc {
            let what = if tr == tc {
                format!("{tc} tokens")
            } else {
                format!("{tr} × {tc} tokens")
            };
            return Err(format!("{title}: {} weights for {what}", m.len()).into());
        }
    }
    let (.., size) = layout(tr, tc, matrices.len());
    draw_png(path, size, |root| paint(root, rows, columns, matrices))
}

fn paint(
    root: &Canvas,
    rows: &[String],
    columns: &[String],
    matrices: &[(String, Vec<f32>)],
) -> PlotResult<()> {
    let (tr, tc) = (rows.len(), columns.len());
    let (cols, _, side, _) = layout(tr, tc, matrices.len());
    let cell = cell_px(tr.max(tc));
    let head_h = CAPTION_PX + cell * tr as i32 + LABEL_PX + GAP_PX;
    let row_labels: Vec<String> = rows.iter().map(|s| visible_token(s)).collect();
    let labels: Vec<String> = columns.iter().map(|s| visible_token(s)).collect();
    let font_px = (cell as f64 * 0.7).clamp(9.0, 16.0);
    let label_style =
        |text: &str, pos: Pos| TextStyle::from((family_for(text), font_px).into_font()).pos(pos);
    for (k, (title, m)) in matrices.iter().enumerate() {
        let x0 = (k % cols) as i32 * side + LABEL_PX;
        let y0 = (k / cols) as i32 * head_h + CAPTION_PX;
        root.draw(&Text::new(
            title.clone(),
            (x0, y0 - 8),
            TextStyle::from((SANS, 15).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom)),
        ))?;
        for i in 0..tr {
            for j in 0..tc {
                let p = m[i * tc + j];
                let (x, y) = (x0 + j as i32 * cell, y0 + i as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    sequential(p.clamp(0.0, 1.0).sqrt()).filled(),
                ))?;
            }
        }
        let (grid_w, grid_h) = (cell * tc as i32, cell * tr as i32);
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + grid_w, y0 + grid_h)],
            RGBColor(150, 150, 150),
        ))?;
        // Queries down the left, keys along the bottom.
        for (i, row_label) in row_labels.iter().enumerate() {
            let mid = i as i32 * cell + cell / 2;
            root.draw(&Text::new(
                row_label.clone(),
                (x0 - 4, y0 + mid),
                label_style(row_label, Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        for (j, label) in labels.iter().enumerate() {
            let mid = j as i32 * cell + cell / 2;
            root.draw(&Text::new(
                label.clone(),
                (x0 + mid, y0 + grid_h + 4),
                label_style(label, Pos::new(HPos::Center, VPos::Top)),
            ))?;
        }
    }
    let ticks: Vec<(f32, String)> = [0.0f32, 0.05, 0.25, 0.5, 1.0]
        .iter()
        .map(|&p| (p.sqrt(), super::axis_number(p as f64)))
        .collect();
    let bar_h = (cell * tr as i32).clamp(60, 300);
    draw_colour_bar(
        root,
        (cols as i32 * side + 8, CAPTION_PX + 18),
        (16, bar_h),
        "weight",
        &ticks,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::{render, CJK};

    #[test]
    fn whitespace_tokens_are_labelled_with_glyphs_the_font_has() {
        for ws in ["\n", "\t", " "] {
            let label = visible_token(ws);
            assert!(!label.trim().is_empty(), "{ws:?} -> {label:?}");
            let family = family_for(&label);
            assert!(
                label.chars().all(|c| font_has(family, c)),
                "{ws:?} -> {label:?} has a glyph {family} lacks"
            );
        }
        assert_eq!(visible_token("a"), "a");
    }

    #[test]
    fn chinese_tokens_are_written_in_the_cjk_font_and_newlines_in_latin() {
        assert_eq!(family_for(&visible_token("春")), CJK);
        assert_eq!(family_for(&visible_token("\n")), SANS);
    }

    #[test]
    fn the_colour_bar_is_drawn_beside_the_heads() {
        let tokens: Vec<String> = "床前明月光\n".chars().map(String::from).collect();
        let t = tokens.len();
        let causal: Vec<f32> = (0..t * t)
            .map(|k| {
                let (i, j) = (k / t, k % t);
                if j <= i {
                    1.0 / (i + 1) as f32
                } else {
                    0.0
                }
            })
            .collect();
        let matrices = vec![("head 0".to_string(), causal)];
        let (cols, _, side, size) = layout(t, t, 1);
        let px = render(size, |root| paint(root, &tokens, &tokens, &matrices)).unwrap();
        // The top of the bar (weight 1) is the darkest colour of the scale.
        let (x, y) = (cols as i32 * side + 8 + 8, CAPTION_PX + 18 + 1);
        let i = (y as usize * size.0 as usize + x as usize) * 3;
        let (got, top) = (&px[i..i + 3], sequential(1.0));
        let off = got[0].abs_diff(top.0) + got[1].abs_diff(top.1) + got[2].abs_diff(top.2);
        assert!(off < 8, "{got:?} is not the scale's top {top:?}");
    }

    #[test]
    fn a_matrix_of_the_wrong_size_is_refused_naming_it() {
        let path = std::env::temp_dir().join("kindling-attention-never-written.png");
        let err = draw(
            &path,
            &["a".into(), "b".into()],
            &[("head 3".into(), vec![1.0])],
        )
        .unwrap_err()
        .to_string();
        assert_eq!(err, "head 3: 1 weights for 2 tokens");
    }
}

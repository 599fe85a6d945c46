//! The confusion matrix as a heatmap PNG (`kindling eval --plot`): rows are
//! the true digit, columns the predicted one, each cell coloured by its
//! count and the count written in its centre.
//!
//! The colour is log(1 + count) / log(1 + largest count) on the sequential
//! scale: the diagonal holds hundreds or thousands and the mistakes a
//! handful, so on a linear scale every mistake would be the same pale
//! colour; on a log scale 1, 5 and 50 mistakes are told apart.

use super::{draw_colour_bar, draw_png, ink_on, sequential, Canvas, PlotResult, SANS};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const CELL_PX: i32 = 52;
/// Room left of the grid for the row digits and "true".
const LEFT: i32 = 70;
const TOP: i32 = 50;
/// Room right of the grid for the colour bar and its labels.
const RIGHT: i32 = 110;
const BOTTOM: i32 = 60;

/// Where a count falls on the colour scale, in [0, 1].
fn shade(count: usize, max: usize) -> f32 {
    if max == 0 {
        return 0.0;
    }
    ((1.0 + count as f64).ln() / (1.0 + max as f64).ln()) as f32
}

fn size(n: usize) -> (u32, u32) {
    let grid = CELL_PX * n as i32;
    ((LEFT + grid + RIGHT) as u32, (TOP + grid + BOTTOM) as u32)
}

pub fn draw(path: &Path, confusion: &[Vec<usize>]) -> PlotResult<()> {
    draw_png(path, size(confusion.len()), |root| paint(root, confusion))
}

fn paint(root: &Canvas, confusion: &[Vec<usize>]) -> PlotResult<()> {
    let n = confusion.len();
    let grid = CELL_PX * n as i32;
    let max = confusion.iter().flatten().copied().max().unwrap_or(0);
    let centred = |size: f64| {
        TextStyle::from((SANS, size).into_font()).pos(Pos::new(HPos::Center, VPos::Center))
    };
    root.draw(&Text::new(
        "Confusion matrix (rows: true digit, columns: predicted)",
        (LEFT + grid / 2, TOP / 2),
        centred(17.0),
    ))?;
    for (t, row) in confusion.iter().enumerate() {
        for (p, &count) in row.iter().enumerate() {
            let (x, y) = (LEFT + p as i32 * CELL_PX, TOP + t as i32 * CELL_PX);
            let s = shade(count, max);
            root.draw(&Rectangle::new(
                [(x, y), (x + CELL_PX, y + CELL_PX)],
                sequential(s).filled(),
            ))?;
            // Four-digit counts need a smaller size to fit the cell.
            let size = if count >= 1000 { 14.0 } else { 17.0 };
            let color = if count == 0 {
                RGBColor(170, 170, 170)
            } else {
                ink_on(s)
            };
            root.draw(&Text::new(
                count.to_string(),
                (x + CELL_PX / 2, y + CELL_PX / 2),
                centred(size).color(&color),
            ))?;
        }
    }
    // The diagonal (right answers) framed, so it reads as one line.
    for d in 0..n as i32 {
        let (x, y) = (LEFT + d * CELL_PX, TOP + d * CELL_PX);
        root.draw(&Rectangle::new(
            [(x, y), (x + CELL_PX, y + CELL_PX)],
            RGBColor(60, 60, 60),
        ))?;
    }
    for k in 0..n as i32 {
        let mid = k * CELL_PX + CELL_PX / 2;
        root.draw(&Text::new(
            k.to_string(),
            (LEFT + mid, TOP + grid + 14),
            centred(15.0),
        ))?;
        root.draw(&Text::new(
            k.to_string(),
            (LEFT - 14, TOP + mid),
            centred(15.0),
        ))?;
    }
    root.draw(&Text::new(
        "predicted",
        (LEFT + grid / 2, TOP + grid + 40),
        centred(15.0),
    ))?;
    root.draw(&Text::new(
        "true",
        (LEFT - 40, TOP + grid / 2),
        centred(15.0).transform(FontTransform::Rotate270),
    ))?;
    let mut ticks = vec![(0.0, "0".to_string())];
    let mut c = 1;
    while c <= max {
        ticks.push((shade(c, max), c.to_string()));
        c *= 10;
    }
    if max > 0 && ticks.last().map(|t| t.1 != max.to_string()) == Some(true) {
        // The largest count closes the bar unless a power of ten is too near.
        if shade(max, max) - ticks.last().map_or(0.0, |t| t.0) > 0.08 {
            ticks.push((1.0, max.to_string()));
        }
    }
    draw_colour_bar(root, (LEFT + grid + 24, TOP), (18, grid), "count", &ticks)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plot::render;

    fn pixel(px: &[u8], width: u32, (x, y): (i32, i32)) -> [u8; 3] {
        let i = (y as usize * width as usize + x as usize) * 3;
        [px[i], px[i + 1], px[i + 2]]
    }

    /// A 10-class matrix: 900 on the diagonal, mistakes of 1, 5 and 50.
    fn matrix() -> Vec<Vec<usize>> {
        let mut m = vec![vec![0usize; 10]; 10];
        for (d, row) in m.iter_mut().enumerate() {
            row[d] = 900;
        }
        m[3][5] = 1;
        m[4][9] = 5;
        m[7][1] = 50;
        m
    }

    #[test]
    fn cells_are_coloured_by_count_so_small_mistakes_differ() {
        let m = matrix();
        let (w, _) = size(10);
        let px = render(size(10), |root| paint(root, &m)).unwrap();
        // A cell's colour, read near its corner (away from the number).
        let at = |t: i32, p: i32| {
            pixel(
                &px,
                w,
                (LEFT + p * CELL_PX + 4, TOP + t * CELL_PX + CELL_PX - 5),
            )
        };
        let dark = |c: [u8; 3]| c.iter().map(|&v| v as u32).sum::<u32>();
        let (zero, one, five, fifty, diag) = (at(0, 1), at(3, 5), at(4, 9), at(7, 1), at(2, 2));
        assert!(dark(zero) > dark(one), "{zero:?} {one:?}");
        assert!(dark(one) > dark(five), "{one:?} {five:?}");
        assert!(dark(five) > dark(fifty), "{five:?} {fifty:?}");
        assert!(dark(fifty) > dark(diag), "{fifty:?} {diag:?}");
    }

    #[test]
    fn counts_are_written_in_the_middle_of_their_cell() {
        let m = matrix();
        let (w, _) = size(10);
        let px = render(size(10), |root| paint(root, &m)).unwrap();
        // The "5" at row 4, column 9 is dark ink on a light cell: the
        // centre of its dark pixels is the cell's centre.
        let (x0, y0) = (LEFT + 9 * CELL_PX, TOP + 4 * CELL_PX);
        let (mut sx, mut sy, mut k) = (0i64, 0i64, 0i64);
        for y in y0 + 2..y0 + CELL_PX - 2 {
            for x in x0 + 2..x0 + CELL_PX - 2 {
                if pixel(&px, w, (x, y)).iter().all(|&v| v < 100) {
                    sx += x as i64;
                    sy += y as i64;
                    k += 1;
                }
            }
        }
        assert!(k > 10, "no digit drawn in the cell");
        let (cx, cy) = (sx / k, sy / k);
        let (mx, my) = ((x0 + CELL_PX / 2) as i64, (y0 + CELL_PX / 2) as i64);
        assert!(
            (cx - mx).abs() <= 4 && (cy - my).abs() <= 4,
            "ink centred at ({cx}, {cy}), cell centre ({mx}, {my})"
        );
    }

    #[test]
    fn writes_a_png() {
        let path =
            std::env::temp_dir().join(format!("kindling-confusion-{}.png", std::process::id()));
        draw(&path, &matrix()).unwrap();
        assert!(std::fs::read(&path).unwrap().starts_with(b"\x89PNG"));
        std::fs::remove_file(&path).ok();
    }
}

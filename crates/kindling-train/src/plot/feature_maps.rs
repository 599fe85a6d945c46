//! What each LeNet-5 layer sees for one image, in one labelled PNG: the input,
//! the learned C1 kernels (each above the map it produces), the C1, S2, C3
//! and S4 feature maps, and bar charts of the C5 and F6 units and the output
//! probabilities.
//!
//! All maps of a layer share one grey scale (black = 0, white = the layer's
//! largest activation), so a map that barely fires looks dark rather than
//! being stretched to full contrast. Layers with negative values (tanh
//! networks) and the kernels use a diverging scale instead: blue negative,
//! white zero, red positive, symmetric about zero.

use super::{draw_png, PlotResult};
use kindling_models::lenet5::{LeNet5, LeNet5Activations};
use kindling_tensor::Tensor;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: i32 = 1180;
const LABEL_W: i32 = 170;
/// Every map is drawn about this many pixels wide, whatever its resolution.
const CELL_PX: i32 = 112;
/// Horizontal and vertical distance between maps (room for a map's number).
const PITCH_X: i32 = CELL_PX + 12;
const PITCH_Y: i32 = CELL_PX + 24;
const MAPS_PER_ROW: usize = 8;
const CAPTION_H: i32 = 22;
const BAR_ROW_H: i32 = 200;

/// A layer's maps `[channels, rows, cols]` for the first image of a batch.
struct MapRow {
    title: String,
    maps: Vec<Vec<f32>>,
    side: usize,
}

impl MapRow {
    fn from_activation(name: &str, t: &Tensor) -> PlotResult<MapRow> {
        let s = t.shape();
        if s.len() != 4 {
            return Err(format!("{name}: expected [B, C, H, W], got {s:?}").into());
        }
        let (c, side) = (s[1], s[2]);
        let v = t.narrow(0, 0, 1)?.to_vec_f32()?;
        Ok(MapRow {
            title: format!("{name} {c}@{side}×{side}"),
            maps: v.chunks(side * side).map(<[f32]>::to_vec).collect(),
            side,
        })
    }

    fn lines(&self) -> i32 {
        self.maps.len().div_ceil(MAPS_PER_ROW) as i32
    }

    fn height(&self) -> i32 {
        CAPTION_H + self.lines() * PITCH_Y
    }
}

/// Maps a value to a colour: grey from 0 to `hi` when `signed` is false,
/// blue–white–red over [−hi, hi] when it is true.
fn color(v: f32, hi: f32, signed: bool) -> RGBColor {
    let hi = if hi > 0.0 { hi } else { 1.0 };
    if signed {
        let t = (v / hi).clamp(-1.0, 1.0);
        let fade = |a: f32| (255.0 * (1.0 - a)).round() as u8;
        if t >= 0.0 {
            RGBColor(255, fade(t * 0.85), fade(t * 0.85))
        } else {
            RGBColor(fade(-t * 0.85), fade(-t * 0.6), 255)
        }
    } else {
        let g = (255.0 * (v / hi).clamp(0.0, 1.0)).round() as u8;
        RGBColor(g, g, g)
    }
}

/// Draws `row` at height `y`; returns the y below it.
fn draw_maps<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    y: i32,
    row: &MapRow,
    signed_always: bool,
) -> PlotResult<i32>
where
    DB::ErrorType: 'static,
{
    let lo = row.maps.iter().flatten().fold(0f32, |a, &v| a.min(v));
    let hi = row.maps.iter().flatten().fold(0f32, |a, &v| a.max(v));
    let signed = signed_always || lo < 0.0;
    let hi = if signed { hi.max(-lo) } else { hi };
    let scale_note = if signed {
        format!("scale ±{hi:.2}")
    } else {
        format!("scale 0 … {hi:.2}")
    };
    root.draw(&Text::new(
        row.title.as_str(),
        (10, y + CAPTION_H + 30),
        ("sans-serif", 17),
    ))?;
    root.draw(&Text::new(
        scale_note,
        (10, y + CAPTION_H + 54),
        ("sans-serif", 13).into_font().color(&RGBColor(90, 90, 90)),
    ))?;
    let px = (CELL_PX / row.side as i32).max(1);
    for (k, map) in row.maps.iter().enumerate() {
        let (line, col) = ((k / MAPS_PER_ROW) as i32, (k % MAPS_PER_ROW) as i32);
        let x0 = LABEL_W + col * PITCH_X;
        let y0 = y + CAPTION_H + line * PITCH_Y;
        if row.maps.len() > 1 {
            root.draw(&Text::new(
                format!("{}", k + 1),
                (x0, y0 - 16),
                ("sans-serif", 12).into_font().color(&RGBColor(90, 90, 90)),
            ))?;
        }
        for (i, &v) in map.iter().enumerate() {
            let (r, c) = ((i / row.side) as i32, (i % row.side) as i32);
            let (x, yy) = (x0 + c * px, y0 + r * px);
            root.draw(&Rectangle::new(
                [(x, yy), (x + px, yy + px)],
                color(v, hi, signed).filled(),
            ))?;
        }
        let side = row.side as i32 * px;
        root.draw(&Rectangle::new(
            [(x0 - 1, y0 - 1), (x0 + side, y0 + side)],
            RGBColor(170, 170, 170),
        ))?;
    }
    Ok(y + row.height())
}

/// A bar per unit; `highlight` marks one bar (the predicted digit).
fn draw_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    values: &[f32],
    y_desc: &str,
    highlight: Option<usize>,
) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    let n = values.len();
    let lo = values.iter().fold(0f32, |a, &v| a.min(v));
    let hi = values.iter().fold(0f32, |a, &v| a.max(v));
    let hi = if hi - lo <= 0.0 { lo + 1.0 } else { hi };
    let pad = (hi - lo) * 0.05;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(52)
        .build_cartesian_2d(
            -0.5f32..n as f32 - 0.5,
            (lo - if lo < 0.0 { pad } else { 0.0 })..hi + pad,
        )?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .y_labels(5)
        .x_labels(n.min(13))
        .x_label_formatter(&|v| format!("{:.0}", v))
        .y_desc(y_desc)
        .label_style(("sans-serif", 12))
        .draw()?;
    chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
        let color = if Some(i) == highlight {
            RGBColor(200, 60, 20)
        } else {
            RGBColor(60, 100, 180)
        };
        let x = i as f32;
        Rectangle::new([(x - 0.4, 0.0), (x + 0.4, v)], color.filled())
    }))?;
    Ok(())
}

/// Draws every layer of `model` for one image. `input01` is the 28×28 image
/// in [0, 1] pixels (what the digit looks like), `acts` the activations of
/// its normalised version, `title` a line naming the image and prediction.
pub fn draw(
    path: &Path,
    title: &str,
    model: &LeNet5,
    input01: &[f32],
    acts: &LeNet5Activations,
) -> PlotResult<()> {
    let input = MapRow {
        title: "input 1@28×28".into(),
        maps: vec![input01.to_vec()],
        side: 28,
    };
    let w = model.c1.weight.shape().to_vec();
    let kernels = MapRow {
        title: format!("C1 kernels {}@{}×{}", w[0], w[2], w[3]),
        maps: model
            .c1
            .weight
            .to_vec_f32()?
            .chunks(w[1] * w[2] * w[3])
            .map(<[f32]>::to_vec)
            .collect(),
        side: w[2],
    };
    let rows = [
        MapRow::from_activation("C1", &acts.c1)?,
        MapRow::from_activation("S2", &acts.s2)?,
        MapRow::from_activation("C3", &acts.c3)?,
        MapRow::from_activation("S4", &acts.s4)?,
    ];
    let first = |t: &Tensor| -> PlotResult<Vec<f32>> { Ok(t.narrow(0, 0, 1)?.to_vec_f32()?) };
    let c5 = first(&acts.c5)?;
    let f6 = first(&acts.f6)?;
    let probs = first(&acts.logits.softmax(-1)?)?;
    let best = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i);

    let top = 50;
    let maps_h: i32 =
        input.height() + kernels.height() + rows.iter().map(MapRow::height).sum::<i32>();
    let height = top + maps_h + 2 * BAR_ROW_H + 20;
    let size: (u32, u32) = (WIDTH as u32, height as u32);
    draw_png(path, size, |root| {
        root.draw(&Text::new(title, (10, 14), ("sans-serif", 20)))?;
        let mut y = top;
        y = draw_maps(root, y, &input, false)?;
        y = draw_maps(root, y, &kernels, true)?;
        for row in &rows {
            y = draw_maps(root, y, row, false)?;
        }
        y += 10;
        let c5_area = root
            .clone()
            .shrink((0, y), (WIDTH as u32, BAR_ROW_H as u32));
        draw_bars(
            &c5_area,
            &format!("C5: {} units", c5.len()),
            &c5,
            "activation",
            None,
        )?;
        y += BAR_ROW_H;
        let split = WIDTH * 3 / 5;
        let f6_area = root
            .clone()
            .shrink((0, y), (split as u32, BAR_ROW_H as u32));
        draw_bars(
            &f6_area,
            &format!("F6: {} units", f6.len()),
            &f6,
            "activation",
            None,
        )?;
        let out_area = root
            .clone()
            .shrink((split, y), ((WIDTH - split) as u32, BAR_ROW_H as u32));
        draw_bars(
            &out_area,
            "output: softmax probability per digit",
            &probs,
            "probability",
            best,
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kindling_models::lenet5::LeNet5Config;
    use kindling_tensor::Rng;

    #[test]
    fn draws_every_layer_of_a_fresh_model_to_a_png() {
        let model = LeNet5::new(LeNet5Config::default(), &mut Rng::new(0)).unwrap();
        let x01: Vec<f32> = (0..784).map(|i| (i % 28) as f32 / 27.0).collect();
        let x = Tensor::from_vec(x01.clone(), &[1, 1, 28, 28]).unwrap();
        let acts = model.forward_all(&x).unwrap();
        let path = std::env::temp_dir().join(format!("kindling-maps-{}.png", std::process::id()));
        draw(&path, "test", &model, &x01, &acts).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"));
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn grey_and_diverging_scales() {
        assert_eq!(color(0.0, 2.0, false), RGBColor(0, 0, 0));
        assert_eq!(color(2.0, 2.0, false), RGBColor(255, 255, 255));
        assert_eq!(color(0.0, 2.0, true), RGBColor(255, 255, 255));
        let RGBColor(r, _, b) = color(2.0, 2.0, true);
        assert!(r > b);
        let RGBColor(r, _, b) = color(-2.0, 2.0, true);
        assert!(b > r);
    }
}

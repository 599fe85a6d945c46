//! Every picture Kindling draws, in one place: training curves
//! (`curves.png`, the polyfit demo), the confusion matrix, attention maps,
//! LeNet-5's feature maps and the FGSM examples. Trainers and commands
//! compute what to show and call in here; the pieces every picture shares
//! are written once below: the fonts, the colour scale and its bar, how axis
//! numbers are written, and the PNG writer.
//!
//! Drawing is plotters on an RGB buffer; the fonts are compiled in (from
//! assets/fonts) so no system font library is needed.

pub mod adversarial;
pub mod attention;
pub mod confusion;
pub mod curves;
pub mod degradation;
pub mod feature_maps;
pub mod grad_norms;
pub mod seq2seq;
pub mod similarity;
pub mod word_pairs;

pub use curves::{points, save_panels, Panel, Series};

use ab_glyph::{Font, FontRef};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::Once;

/// Drawing errors (plotters', the font, the PNG file), Send + Sync like the
/// crate's `Error` so they cross threads and convert into it.
pub type PlotResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A bitmap drawing area, what every picture is drawn on.
pub(crate) type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// DejaVu Sans: Latin, Greek, arrows and symbols; the "sans-serif" family.
static SANS_TTF: &[u8] = include_bytes!("../../../../assets/fonts/DejaVuSans.ttf");
/// Droid Sans Fallback covers CJK (Tang poems on attention maps) but not
/// every Latin letter or symbol; the "cjk" family. Apache-2.0, see assets/fonts.
static CJK_TTF: &[u8] = include_bytes!("../../../../assets/fonts/DroidSansFallback.ttf");
static REGISTER: Once = Once::new();

/// The family name of the Latin font.
pub(crate) const SANS: &str = "sans-serif";
/// The family name of the CJK font.
pub(crate) const CJK: &str = "cjk";

pub(crate) fn register_font() {
    REGISTER.call_once(|| {
        // The fonts are fixed, valid TTFs compiled into the binary.
        let _ = plotters::style::register_font(SANS, FontStyle::Normal, SANS_TTF);
        let _ = plotters::style::register_font(CJK, FontStyle::Normal, CJK_TTF);
    });
}

/// Whether the font of `family` (`SANS` or `CJK`) has a glyph for `c`: a
/// character it lacks is drawn as an empty box.
pub(crate) fn font_has(family: &str, c: char) -> bool {
    let bytes = if family == CJK { CJK_TTF } else { SANS_TTF };
    // The fonts are compiled in and parse (the tests draw with both).
    FontRef::try_from_slice(bytes).is_ok_and(|f| f.glyph_id(c).0 != 0)
}

/// The family to write `text` in: the Latin font when it has every
/// character, else the CJK font when that one does, else the Latin font.
pub(crate) fn family_for(text: &str) -> &'static str {
    if text.chars().all(|c| font_has(SANS, c)) {
        SANS
    } else if text.chars().all(|c| font_has(CJK, c)) {
        CJK
    } else {
        SANS
    }
}

/// An axis number as people write it: whole numbers without a decimal
/// point ("1", not "1.0"), others with as few digits as the tick spacing
/// needs (at most four after the point, trailing zeros dropped).
pub(crate) fn axis_number(v: f64) -> String {
    if v.is_finite() && v == v.round() && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    if v != 0.0 && (v.abs() < 1e-3 || v.abs() >= 1e6) {
        return format!("{v:.1e}");
    }
    let s = format!("{v:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// The sequential colour scale of heatmaps: `t` in [0, 1] from near-white
/// through light blue to dark blue (the anchors are ColorBrewer's "Blues"),
/// so more is darker and equal steps look about equally different.
pub(crate) fn sequential(t: f32) -> RGBColor {
    const ANCHORS: [(u8, u8, u8); 5] = [
        (247, 251, 255),
        (198, 219, 239),
        (107, 174, 214),
        (33, 113, 181),
        (8, 48, 107),
    ];
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let x = t * (ANCHORS.len() - 1) as f32;
    let i = (x.floor() as usize).min(ANCHORS.len() - 2);
    let f = x - i as f32;
    let (a, b) = (ANCHORS[i], ANCHORS[i + 1]);
    let mix = |p: u8, q: u8| (p as f32 + (q as f32 - p as f32) * f).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Text that stays legible on a cell of the sequential scale at `t`.
pub(crate) fn ink_on(t: f32) -> RGBColor {
    if t > 0.55 {
        WHITE
    } else {
        BLACK
    }
}

/// A vertical colour bar with its top-left corner at `(x, y)`: the
/// sequential scale from `t` = 1 at the top to 0 at the bottom, and a label
/// beside each tick `(t, text)`; `title` above it.
pub(crate) fn draw_colour_bar(
    area: &Canvas,
    (x, y): (i32, i32),
    (width, height): (i32, i32),
    title: &str,
    ticks: &[(f32, String)],
) -> PlotResult<()> {
    for row in 0..height {
        let t = 1.0 - row as f32 / (height - 1).max(1) as f32;
        area.draw(&Rectangle::new(
            [(x, y + row), (x + width, y + row + 1)],
            sequential(t).filled(),
        ))?;
    }
    area.draw(&Rectangle::new(
        [(x, y), (x + width, y + height)],
        RGBColor(120, 120, 120),
    ))?;
    let label = TextStyle::from((SANS, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for (t, text) in ticks {
        let ty = y + ((1.0 - t.clamp(0.0, 1.0)) * (height - 1) as f32).round() as i32;
        area.draw(&PathElement::new(
            vec![(x + width, ty), (x + width + 4, ty)],
            BLACK,
        ))?;
        area.draw(&Text::new(text.clone(), (x + width + 7, ty), label.clone()))?;
    }
    let head = TextStyle::from((SANS, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Bottom));
    // Above the bar, clear of the top tick's label.
    area.draw(&Text::new(title.to_string(), (x, y - 12), head))?;
    Ok(())
}

/// Draws a `size` picture on a white canvas with `draw` and returns its RGB
/// pixels, row-major.
pub(crate) fn render(
    size: (u32, u32),
    draw: impl FnOnce(&Canvas) -> PlotResult<()>,
) -> PlotResult<Vec<u8>> {
    register_font();
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE)?;
        draw(&root)?;
        root.present()?;
    }
    Ok(pixels)
}

/// Draws a `size` picture with `draw` and writes it to `path` as a PNG.
pub(crate) fn draw_png(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&Canvas) -> PlotResult<()>,
) -> PlotResult<()> {
    let pixels = render(size, draw)?;
    write_png(path, &pixels, size)?;
    Ok(())
}

/// Encodes an RGB8 buffer as a PNG, written atomically (temp file +
/// rename). Encoding here with the `png` crate keeps plotters'
/// `bitmap_encoder` feature (and the `image` crate) out of the build.
pub(crate) fn write_png(
    path: &Path,
    rgb: &[u8],
    (width, height): (u32, u32),
) -> Result<(), String> {
    let mut bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut bytes, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder
            .write_header()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        writer
            .write_image_data(rgb)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    kindling_tensor::safetensors_io::write_atomic(path, &bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_axis_numbers_have_no_decimal_point() {
        assert_eq!(axis_number(1.0), "1");
        assert_eq!(axis_number(12.0), "12");
        assert_eq!(axis_number(-3.0), "-3");
        assert_eq!(axis_number(0.0), "0");
        assert_eq!(axis_number(0.5), "0.5");
        assert_eq!(axis_number(2.25), "2.25");
        assert_eq!(axis_number(0.0001), "1.0e-4");
    }

    #[test]
    fn sequential_scale_runs_light_to_dark() {
        let lum = |c: RGBColor| c.0 as u32 * 3 + c.1 as u32 * 6 + c.2 as u32;
        let steps: Vec<u32> = (0..=10).map(|i| lum(sequential(i as f32 / 10.0))).collect();
        assert!(steps.windows(2).all(|w| w[0] > w[1]), "{steps:?}");
        assert_eq!(sequential(-1.0), sequential(0.0));
        assert_eq!(sequential(f32::NAN), sequential(0.0));
    }

    #[test]
    fn fonts_are_chosen_by_the_glyphs_they_have() {
        assert!(font_has(SANS, 'a'));
        assert!(!font_has(SANS, '春'));
        assert!(font_has(CJK, '春'));
        assert_eq!(family_for("loss"), SANS);
        assert_eq!(family_for("春眠"), CJK);
    }

    #[test]
    fn render_fills_the_canvas_white_then_draws() {
        let px = render((4, 3), |root| {
            root.draw_pixel((1, 1), &BLACK)?;
            Ok(())
        })
        .unwrap();
        assert_eq!(px.len(), 4 * 3 * 3);
        assert_eq!(&px[0..3], &[255, 255, 255]);
        assert_eq!(&px[(4 + 1) * 3..(4 + 1) * 3 + 3], &[0, 0, 0]);
    }
}

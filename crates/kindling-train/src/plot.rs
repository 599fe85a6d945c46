//! Pictures: line charts drawn with plotters into PNG files. The font is
//! compiled in (DejaVu Sans, in assets/fonts) so no system font library is needed.

pub type PlotResult<T> = Result<T, Box<dyn std::error::Error>>;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");
/// Droid Sans Fallback covers CJK (Tang poems on attention maps); it is the
/// "cjk" family. Apache-2.0, see assets/fonts.
static CJK_FONT: &[u8] = include_bytes!("../../../assets/fonts/DroidSansFallback.ttf");
static REGISTER: Once = Once::new();

pub fn register_font() {
    REGISTER.call_once(|| {
        // The font is a fixed, valid TTF compiled into the binary.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
        let _ = plotters::style::register_font("cjk", FontStyle::Normal, CJK_FONT);
    });
}

pub struct Series<'a> {
    pub label: &'a str,
    pub points: Vec<(f32, f32)>,
    pub color: RGBColor,
    /// Draw dots instead of a line (for samples).
    pub dots: bool,
}

impl<'a> Series<'a> {
    /// A line of `points`.
    pub fn line(label: &'a str, points: Vec<(f32, f32)>, color: RGBColor) -> Series<'a> {
        Series {
            label,
            points,
            color,
            dots: false,
        }
    }
}

pub struct Panel<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
    pub series: Vec<Series<'a>>,
    pub log_y: bool,
}

fn bounds(panel: &Panel) -> (f32, f32, f32, f32) {
    let pts = panel.series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for &(x, y) in pts {
        if !y.is_finite() {
            continue;
        }
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if x0 >= x1 {
        x1 = x0 + 1.0;
    }
    if y0 >= y1 {
        y1 = y0 + 1.0;
    }
    let pad = (y1 - y0) * 0.05;
    (x0, x1, y0 - pad, y1 + pad)
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    panel: &Panel,
) -> PlotResult<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1, y0, y1) = bounds(panel);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(panel.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60);
    if panel.log_y {
        let lo = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .filter(|v| *v > 0.0)
            .fold(f32::MAX, f32::min);
        let lo = if lo == f32::MAX { 1e-6 } else { lo * 0.8 };
        let mut chart = builder.build_cartesian_2d(x0..x1, (lo..y1.max(lo * 10.0)).log_scale())?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .y_desc(panel.y_label)
            .label_style(("sans-serif", 14))
            .draw()?;
        for s in &panel.series {
            let pts: Vec<(f32, f32)> = s.points.iter().copied().filter(|p| p.1 > 0.0).collect();
            chart
                .draw_series(LineSeries::new(pts, s.color.stroke_width(2)))?
                .label(s.label)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], s.color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    } else {
        let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .y_desc(panel.y_label)
            .label_style(("sans-serif", 14))
            .draw()?;
        for s in &panel.series {
            let color = s.color;
            if s.dots {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))?
                    .label(s.label)
                    .legend(move |(x, y)| Circle::new((x + 10, y), 3, color.filled()));
            } else {
                chart
                    .draw_series(LineSeries::new(s.points.clone(), color.stroke_width(2)))?
                    .label(s.label)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                    });
            }
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 14))
            .draw()?;
    }
    Ok(())
}

/// Encodes an RGB8 buffer drawn by plotters as a PNG, written atomically
/// (temp file + rename). Encoding here with the `png` crate keeps plotters'
/// `bitmap_encoder` feature (and the `image` crate) out of the build.
pub fn write_png(path: &Path, rgb: &[u8], (width, height): (u32, u32)) -> Result<(), String> {
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

/// Panels side by side in one PNG, written atomically.
pub fn save_panels(path: &Path, panels: &[Panel]) -> PlotResult<()> {
    register_font();
    let width = 640 * panels.len().max(1) as u32;
    let size: (u32, u32) = (width, 480);
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, size).into_drawing_area();
        root.fill(&WHITE)?;
        let areas = root.split_evenly((1, panels.len().max(1)));
        for (area, panel) in areas.iter().zip(panels) {
            draw_panel(area, panel)?;
        }
        root.present()?;
    }
    write_png(path, &pixels, size)?;
    Ok(())
}

/// `(x, y)` points from metric records that have both keys (numbers).
pub fn points(metrics: &[serde_json::Value], x: &str, y: &str) -> Vec<(f32, f32)> {
    metrics
        .iter()
        .filter_map(|m| Some((m[x].as_f64()? as f32, m[y].as_f64()? as f32)))
        .collect()
}

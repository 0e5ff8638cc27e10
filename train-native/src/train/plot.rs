//! Line and point charts as PNG, drawn without a font library: axis numbers and labels use a
//! built-in 5 × 7 pixel font (digits, `.`, `-`, `±` is not needed, and the upper-case letters
//! the charts use), so the binary needs no system fonts.

use anyhow::Context;

/// One curve or point set.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend text (upper-cased when drawn).
    pub label: String,
    /// RGB colour.
    pub color: [u8; 3],
    /// `(x, y)` points; non-finite ones are skipped (and break the line).
    pub points: Vec<(f64, f64)>,
    /// Draw points as small squares instead of joining them.
    pub markers: bool,
}

/// One chart.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Title above the chart.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// The curves.
    pub series: Vec<Series>,
    /// Fixed y range; `None`: fit the data.
    pub y_range: Option<(f64, f64)>,
}

const GLYPH_W: usize = 5;
const GLYPH_H: usize = 7;
const SCALE: usize = 2;

fn glyph(c: char) -> Option<[u8; GLYPH_H]> {
    let rows: [u8; 7] = match c {
        '0' => [
            0b01110, 0b10001, 0b10011, 0b10101, 0b11001, 0b10001, 0b01110,
        ],
        '1' => [
            0b00100, 0b01100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
        '2' => [
            0b01110, 0b10001, 0b00001, 0b00010, 0b00100, 0b01000, 0b11111,
        ],
        '3' => [
            0b11111, 0b00010, 0b00100, 0b00010, 0b00001, 0b10001, 0b01110,
        ],
        '4' => [
            0b00010, 0b00110, 0b01010, 0b10010, 0b11111, 0b00010, 0b00010,
        ],
        '5' => [
            0b11111, 0b10000, 0b11110, 0b00001, 0b00001, 0b10001, 0b01110,
        ],
        '6' => [
            0b00110, 0b01000, 0b10000, 0b11110, 0b10001, 0b10001, 0b01110,
        ],
        '7' => [
            0b11111, 0b00001, 0b00010, 0b00100, 0b01000, 0b01000, 0b01000,
        ],
        '8' => [
            0b01110, 0b10001, 0b10001, 0b01110, 0b10001, 0b10001, 0b01110,
        ],
        '9' => [
            0b01110, 0b10001, 0b10001, 0b01111, 0b00001, 0b00010, 0b01100,
        ],
        '.' => [0, 0, 0, 0, 0, 0b01100, 0b01100],
        '-' => [0, 0, 0, 0b11111, 0, 0, 0],
        '(' => [
            0b00010, 0b00100, 0b01000, 0b01000, 0b01000, 0b00100, 0b00010,
        ],
        ')' => [
            0b01000, 0b00100, 0b00010, 0b00010, 0b00010, 0b00100, 0b01000,
        ],
        '=' => [0, 0, 0b11111, 0, 0b11111, 0, 0],
        ',' => [0, 0, 0, 0, 0b01100, 0b00100, 0b01000],
        'A' => [
            0b01110, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        'B' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10001, 0b10001, 0b11110,
        ],
        'C' => [
            0b01110, 0b10001, 0b10000, 0b10000, 0b10000, 0b10001, 0b01110,
        ],
        'D' => [
            0b11100, 0b10010, 0b10001, 0b10001, 0b10001, 0b10010, 0b11100,
        ],
        'E' => [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b11111,
        ],
        'F' => [
            0b11111, 0b10000, 0b10000, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        'G' => [
            0b01110, 0b10001, 0b10000, 0b10111, 0b10001, 0b10001, 0b01111,
        ],
        'H' => [
            0b10001, 0b10001, 0b10001, 0b11111, 0b10001, 0b10001, 0b10001,
        ],
        'I' => [
            0b01110, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b01110,
        ],
        'K' => [
            0b10001, 0b10010, 0b10100, 0b11000, 0b10100, 0b10010, 0b10001,
        ],
        'L' => [
            0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b10000, 0b11111,
        ],
        'M' => [
            0b10001, 0b11011, 0b10101, 0b10101, 0b10001, 0b10001, 0b10001,
        ],
        'N' => [
            0b10001, 0b11001, 0b10101, 0b10011, 0b10001, 0b10001, 0b10001,
        ],
        'O' => [
            0b01110, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
        'P' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10000, 0b10000, 0b10000,
        ],
        'R' => [
            0b11110, 0b10001, 0b10001, 0b11110, 0b10100, 0b10010, 0b10001,
        ],
        'S' => [
            0b01111, 0b10000, 0b10000, 0b01110, 0b00001, 0b00001, 0b11110,
        ],
        'T' => [
            0b11111, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
        'U' => [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01110,
        ],
        'V' => [
            0b10001, 0b10001, 0b10001, 0b10001, 0b10001, 0b01010, 0b00100,
        ],
        'W' => [
            0b10001, 0b10001, 0b10001, 0b10101, 0b10101, 0b10101, 0b01010,
        ],
        'Y' => [
            0b10001, 0b10001, 0b01010, 0b00100, 0b00100, 0b00100, 0b00100,
        ],
        ' ' => [0; 7],
        _ => return None,
    };
    Some(rows)
}

/// An RGB raster.
struct Canvas {
    width: usize,
    height: usize,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: usize, height: usize) -> Self {
        Self {
            width,
            height,
            pixels: vec![255; width * height * 3],
        }
    }

    fn set(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let at = (y as usize * self.width + x as usize) * 3;
            self.pixels[at..at + 3].copy_from_slice(&color);
        }
    }

    fn rect(&mut self, x0: i64, y0: i64, x1: i64, y1: i64, color: [u8; 3]) {
        for y in y0..=y1 {
            for x in x0..=x1 {
                self.set(x, y, color);
            }
        }
    }

    /// A line two pixels wide (Bresenham).
    fn line(&mut self, (x0, y0): (i64, i64), (x1, y1): (i64, i64), color: [u8; 3]) {
        let (dx, dy) = ((x1 - x0).abs(), -(y1 - y0).abs());
        let (sx, sy) = (if x0 < x1 { 1 } else { -1 }, if y0 < y1 { 1 } else { -1 });
        let (mut x, mut y, mut err) = (x0, y0, dx + dy);
        loop {
            self.rect(x, y, x + 1, y + 1, color);
            if x == x1 && y == y1 {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }

    /// Text with its top-left corner at `(x, y)`; unknown characters are left blank.
    fn text(&mut self, x: i64, y: i64, text: &str, color: [u8; 3]) {
        for (n, c) in text.to_uppercase().chars().enumerate() {
            let Some(rows) = glyph(c) else { continue };
            let left = x + (n * (GLYPH_W + 1) * SCALE) as i64;
            for (r, bits) in rows.iter().enumerate() {
                for col in 0..GLYPH_W {
                    if bits & (1 << (GLYPH_W - 1 - col)) != 0 {
                        let px = left + (col * SCALE) as i64;
                        let py = y + (r * SCALE) as i64;
                        self.rect(px, py, px + SCALE as i64 - 1, py + SCALE as i64 - 1, color);
                    }
                }
            }
        }
    }

    fn png(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
            encoder.set_color(png::ColorType::Rgb);
            encoder.set_depth(png::BitDepth::Eight);
            let mut writer = encoder.write_header().context("writing the PNG header")?;
            writer
                .write_image_data(&self.pixels)
                .context("writing the PNG pixels")?;
        }
        Ok(out)
    }
}

fn text_width(text: &str) -> i64 {
    (text.chars().count() * (GLYPH_W + 1) * SCALE) as i64
}

/// A short label for an axis value.
fn tick_label(v: f64, step: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    if v.abs() >= 1e4 || v.abs() < 1e-3 {
        let exponent = v.abs().log10().floor() as i32;
        return format!("{:.1}E{exponent}", v / 10f64.powi(exponent));
    }
    format!("{v:.decimals$}")
}

/// A "nice" tick step giving about `count` ticks over `span`.
fn nice_step(span: f64, count: usize) -> f64 {
    let raw = span / count as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

fn range(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |r, v| match r {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Draws the panels side by side, each `panel_width × height` pixels, as a PNG.
pub fn render(panels: &[Panel], panel_width: usize, height: usize) -> anyhow::Result<Vec<u8>> {
    let mut canvas = Canvas::new(panel_width * panels.len().max(1), height);
    for (n, panel) in panels.iter().enumerate() {
        draw_panel(
            &mut canvas,
            panel,
            (n * panel_width) as i64,
            panel_width as i64,
            height as i64,
        );
    }
    canvas.png()
}

fn draw_panel(canvas: &mut Canvas, panel: &Panel, left: i64, width: i64, height: i64) {
    let black = [0, 0, 0];
    let grey = [225, 225, 225];
    let (x0, x1) = (left + 110, left + width - 20);
    let (y0, y1) = (50, height - 60);
    canvas.text(
        left + (width - text_width(&panel.title)) / 2,
        14,
        &panel.title,
        black,
    );

    let xs = range(
        panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0)),
    );
    let ys = panel.y_range.or_else(|| {
        range(
            panel
                .series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1)),
        )
    });
    let (Some((mut xmin, mut xmax)), Some((mut ymin, mut ymax))) = (xs, ys) else {
        canvas.text(x0 + 10, (y0 + y1) / 2, "NO DATA", black);
        return;
    };
    if xmax - xmin < 1e-12 {
        xmin -= 0.5;
        xmax += 0.5;
    }
    if ymax - ymin < 1e-12 {
        ymin -= 0.5;
        ymax += 0.5;
    }
    let px = |x: f64| x0 + ((x - xmin) / (xmax - xmin) * (x1 - x0) as f64).round() as i64;
    let py = |y: f64| y1 - ((y - ymin) / (ymax - ymin) * (y1 - y0) as f64).round() as i64;

    for (lo, hi, count, vertical) in [(ymin, ymax, 5, false), (xmin, xmax, 6, true)] {
        let step = nice_step(hi - lo, count);
        let mut t = (lo / step).ceil() * step;
        while t <= hi + step * 1e-9 {
            let label = tick_label(t, step);
            if vertical {
                let x = px(t);
                canvas.line((x, y0), (x, y1), grey);
                canvas.text(x - text_width(&label) / 2, y1 + 8, &label, black);
            } else {
                let y = py(t);
                canvas.line((x0, y), (x1, y), grey);
                canvas.text(x0 - 8 - text_width(&label), y - 7, &label, black);
            }
            t += step;
        }
    }
    canvas.line((x0, y0), (x0, y1), black);
    canvas.line((x0, y1), (x1, y1), black);
    canvas.text(
        x0 + (x1 - x0 - text_width(&panel.x_label)) / 2,
        y1 + 34,
        &panel.x_label,
        black,
    );

    for (k, series) in panel.series.iter().enumerate() {
        let mut previous: Option<(i64, i64)> = None;
        for &(x, y) in &series.points {
            if !(x.is_finite() && y.is_finite()) {
                previous = None;
                continue;
            }
            let point = (px(x), py(y.clamp(ymin, ymax)));
            if series.markers {
                canvas.rect(
                    point.0 - 3,
                    point.1 - 3,
                    point.0 + 3,
                    point.1 + 3,
                    series.color,
                );
            } else if let Some(p) = previous {
                canvas.line(p, point, series.color);
            } else {
                canvas.rect(
                    point.0 - 1,
                    point.1 - 1,
                    point.0 + 1,
                    point.1 + 1,
                    series.color,
                );
            }
            previous = Some(point);
        }
        let ly = y0 + 8 + 22 * k as i64;
        canvas.rect(x1 - 150, ly + 4, x1 - 130, ly + 8, series.color);
        canvas.text(x1 - 124, ly, &series.label, black);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_a_png_of_the_requested_size() {
        let panel = Panel {
            title: "loss".into(),
            x_label: "epoch".into(),
            series: vec![Series {
                label: "train".into(),
                color: [200, 0, 0],
                points: vec![(1.0, 1.0), (2.0, 0.5), (3.0, f64::NAN), (4.0, 0.25)],
                markers: false,
            }],
            y_range: None,
        };
        let png = render(&[panel.clone(), panel], 400, 300).expect("png");
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, at bytes 16..24.
        assert_eq!(
            u32::from_be_bytes([png[16], png[17], png[18], png[19]]),
            800
        );
        assert_eq!(
            u32::from_be_bytes([png[20], png[21], png[22], png[23]]),
            300
        );
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(nice_step(1.0, 5), 0.2);
        assert_eq!(nice_step(410.0, 6), 100.0);
        assert_eq!(tick_label(0.6000000001, 0.2), "0.6");
        assert_eq!(tick_label(200.0, 100.0), "200");
    }
}

//! Synthetic look-alikes of the paper's data sets, generated from a seed at any size and
//! foreground fraction, so that demos and tests need no download:
//! - blobs: one or two large lesions with wavy borders, darker than the skin (ISIC);
//! - nuclei: many small bright discs on a dark background (DSB 2018);
//! - vessels: thin dark branching curves (DRIVE).
//!
//! Shapes are added until the foreground share reaches the requested fraction; the image is
//! the label seen through a per-channel contrast, a smooth illumination gradient and noise.

use std::f64::consts::PI;

use allsweep_config::dataset::{SyntheticData, SyntheticShape};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::split::rng;
use super::LabeledImage;

/// Generates `config.images` images of `h x w`.
pub fn generate(config: &SyntheticData, h: usize, w: usize) -> Vec<LabeledImage> {
    (0..config.images)
        .map(|i| {
            let mut rng = rng(config.seed, 100 + i as u64);
            let mut label = vec![0_u8; h * w];
            match config.shape {
                SyntheticShape::Blobs => blobs(&mut label, h, w, config.foreground, &mut rng),
                SyntheticShape::Nuclei => nuclei(&mut label, h, w, config.foreground, &mut rng),
                SyntheticShape::Vessels => vessels(&mut label, h, w, config.foreground, &mut rng),
            }
            let pixels = render(&label, h, w, config.channels as usize, config.shape, &mut rng);
            let name = format!("synthetic-{}-{i:04}", shape_name(config.shape));
            LabeledImage { name, height: h, width: w, channels: config.channels as usize, pixels, label }
        })
        .collect()
}

fn shape_name(shape: SyntheticShape) -> &'static str {
    match shape {
        SyntheticShape::Blobs => "blobs",
        SyntheticShape::Nuclei => "nuclei",
        SyntheticShape::Vessels => "vessels",
    }
}

fn fraction(label: &[u8]) -> f64 {
    label.iter().map(|&v| v as usize).sum::<usize>() as f64 / label.len() as f64
}

fn disc(label: &mut [u8], h: usize, w: usize, cy: f64, cx: f64, r: f64) {
    let (y0, y1) = ((cy - r).floor().max(0.0) as usize, ((cy + r).ceil() as usize).min(h.saturating_sub(1)));
    let (x0, x1) = ((cx - r).floor().max(0.0) as usize, ((cx + r).ceil() as usize).min(w.saturating_sub(1)));
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dy, dx) = (y as f64 - cy, x as f64 - cx);
            if dy * dy + dx * dx <= r * r {
                label[y * w + x] = 1;
            }
        }
    }
}

/// One or two lesions whose areas add up to the fraction, with a wavy border.
fn blobs(label: &mut [u8], h: usize, w: usize, fg: f64, rng: &mut ChaCha8Rng) {
    let count = if fg > 0.3 || rng.random_bool(0.7) { 1 } else { 2 };
    for _ in 0..count {
        let area = fg * (h * w) as f64 / count as f64;
        let aspect = rng.random_range(0.7..1.4);
        let (a, b) = ((area / PI * aspect).sqrt(), (area / PI / aspect).sqrt());
        let cy = rng.random_range(0.3..0.7) * h as f64;
        let cx = rng.random_range(0.3..0.7) * w as f64;
        let (k, phase, wobble) =
            (rng.random_range(2..6) as f64, rng.random_range(0.0..2.0 * PI), rng.random_range(0.05..0.15));
        for y in 0..h {
            for x in 0..w {
                let (dy, dx) = ((y as f64 - cy) / a, (x as f64 - cx) / b);
                let radius = 1.0 + wobble * (k * dy.atan2(dx) + phase).sin();
                if dy * dy + dx * dx <= radius * radius {
                    label[y * w + x] = 1;
                }
            }
        }
    }
}

/// Small discs until the fraction is reached.
fn nuclei(label: &mut [u8], h: usize, w: usize, fg: f64, rng: &mut ChaCha8Rng) {
    let base = (h.min(w) as f64 / 24.0).max(1.5);
    for _ in 0..100_000 {
        if fraction(label) >= fg {
            break;
        }
        let r = base * rng.random_range(0.7..1.3);
        disc(label, h, w, rng.random_range(0.0..h as f64), rng.random_range(0.0..w as f64), r);
    }
}

/// Random walks from the border that bend and branch, thinning as they go.
fn vessels(label: &mut [u8], h: usize, w: usize, fg: f64, rng: &mut ChaCha8Rng) {
    let scale = h.min(w) as f64 / 48.0;
    for _ in 0..200 {
        if fraction(label) >= fg {
            break;
        }
        let (mut y, mut x, mut angle) = match rng.random_range(0..4) {
            0 => (0.0, rng.random_range(0.0..w as f64), PI / 2.0),
            1 => (h as f64 - 1.0, rng.random_range(0.0..w as f64), -PI / 2.0),
            2 => (rng.random_range(0.0..h as f64), 0.0, 0.0),
            _ => (rng.random_range(0.0..h as f64), w as f64 - 1.0, PI),
        };
        let mut stack = vec![(y, x, angle, 1.6 * scale.max(0.8))];
        while let Some((sy, sx, sa, width)) = stack.pop() {
            (y, x, angle) = (sy, sx, sa);
            for _ in 0..(4 * (h + w)) {
                disc(label, h, w, y, x, width / 2.0 + 0.35);
                angle += rng.random_range(-0.35..0.35);
                y += angle.sin();
                x += angle.cos();
                if y < 0.0 || x < 0.0 || y >= h as f64 || x >= w as f64 {
                    break;
                }
                if rng.random_bool(0.02) && width > 0.9 && stack.len() < 8 {
                    stack.push((
                        y,
                        x,
                        angle + rng.random_range(0.4..1.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 },
                        width * 0.7,
                    ));
                }
            }
            if fraction(label) >= fg {
                return;
            }
        }
    }
}

/// Channel-major pixels: per-channel background and contrast, a smooth gradient, noise.
fn render(label: &[u8], h: usize, w: usize, channels: usize, shape: SyntheticShape, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let sign = if shape == SyntheticShape::Nuclei { 1.0 } else { -1.0 };
    let mut pixels = vec![0_u8; channels * h * w];
    for c in 0..channels {
        let background = rng.random_range(0.35..0.6);
        let contrast = sign * rng.random_range(0.2..0.35);
        let (gy, gx) = (rng.random_range(-0.15..0.15), rng.random_range(-0.15..0.15));
        for y in 0..h {
            for x in 0..w {
                let i = y * w + x;
                let light = gy * (y as f64 / h as f64 - 0.5) + gx * (x as f64 / w as f64 - 0.5);
                let noise = rng.random_range(-0.12..0.12);
                let v = background + light + contrast * label[i] as f64 + noise;
                pixels[c * h * w + i] = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            }
        }
    }
    pixels
}

//! Decoding and resizing images and masks, with errors that name the file.

use std::path::Path;

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, RgbImage};

use super::DataError;

/// Decodes any supported image (JPEG, PNG, TIFF, GIF), by content rather than extension.
/// A JPEG cut short is refused: the decoder would quietly fill the missing rows with grey.
pub fn open(path: &Path) -> Result<DynamicImage, DataError> {
    let unreadable = |reason: String| DataError::Malformed { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
    if bytes.starts_with(&[0xFF, 0xD8]) && !has_jpeg_end_marker(&bytes) {
        return Err(unreadable("truncated JPEG (no end-of-image marker); download it again".into()));
    }
    image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| unreadable(e.to_string()))?
        .decode()
        .map_err(|e| unreadable(e.to_string()))
}

/// Whether the JPEG end-of-image marker (FF D9) is in the file's last kilobyte; inside the
/// compressed data an FF byte is always followed by 00 or a restart marker, never D9.
fn has_jpeg_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(1024)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// RGB pixels (alpha dropped), resized to `h x w` bilinearly when the size differs.
pub fn rgb(image: &DynamicImage, h: usize, w: usize) -> RgbImage {
    let rgb = image.to_rgb8();
    if rgb.dimensions() == (w as u32, h as u32) {
        rgb
    } else {
        image::imageops::resize(&rgb, w as u32, h as u32, FilterType::Triangle)
    }
}

/// A binary mask from any non-zero pixel, resized to `h x w` (bilinear, then >= half).
pub fn mask(image: &DynamicImage, h: usize, w: usize) -> GrayImage {
    let mut gray = image.to_luma8();
    for p in gray.pixels_mut() {
        p.0[0] = if p.0[0] > 0 { 255 } else { 0 };
    }
    if gray.dimensions() != (w as u32, h as u32) {
        gray = image::imageops::resize(&gray, w as u32, h as u32, FilterType::Triangle);
    }
    gray
}

/// Channel-major bytes `[3, H, W]` of an RGB image.
pub fn channel_major(rgb: &RgbImage) -> Vec<u8> {
    let (w, h) = rgb.dimensions();
    let plane = (w * h) as usize;
    let mut out = vec![0; 3 * plane];
    for (i, p) in rgb.pixels().enumerate() {
        for c in 0..3 {
            out[c * plane + i] = p.0[c];
        }
    }
    out
}

/// `{0, 1}` labels of a binary mask image.
pub fn binary(mask: &GrayImage) -> Vec<u8> {
    mask.pixels().map(|p| u8::from(p.0[0] >= 128)).collect()
}

/// Files in `folder` whose names end with one of `suffixes`, sorted by name.
pub fn list(folder: &Path, suffixes: &[&str]) -> Result<Vec<std::path::PathBuf>, DataError> {
    if !folder.is_dir() {
        return Err(DataError::MissingFolder(folder.to_path_buf()));
    }
    let entries = std::fs::read_dir(folder).map_err(|source| DataError::Io { path: folder.to_path_buf(), source })?;
    let mut files: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
            !name.starts_with('.') && suffixes.iter().any(|s| name.ends_with(s))
        })
        .collect();
    files.sort();
    Ok(files)
}

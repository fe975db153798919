//! Data Science Bowl 2018 `stage1_train`: `<id>/images/<id>.png` (RGBA; alpha dropped) and
//! `<id>/masks/*.png`, one mask per nucleus, whose union is the label; resized (the paper: 128x128).

use std::path::Path;

use image::GrayImage;
use rayon::prelude::*;

use super::{image_io, DataError, LabeledImage};

pub fn load(root: &Path, h: usize, w: usize, limit: Option<usize>) -> Result<Vec<LabeledImage>, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingFolder(root.to_path_buf()));
    }
    let entries = std::fs::read_dir(root).map_err(|source| DataError::Io { path: root.to_path_buf(), source })?;
    let mut ids: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    ids.sort();
    if ids.is_empty() {
        return Err(DataError::Empty {
            folder: root.to_path_buf(),
            what: "<id>/images/<id>.png sample folders".into(),
        });
    }
    ids.truncate(limit.unwrap_or(usize::MAX));
    ids.par_iter().map(|dir| load_one(dir, h, w)).collect()
}

fn load_one(dir: &Path, h: usize, w: usize) -> Result<LabeledImage, DataError> {
    let id = dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let image_path = dir.join("images").join(format!("{id}.png"));
    if !image_path.is_file() {
        return Err(DataError::Empty { folder: dir.join("images"), what: format!("{id}.png") });
    }
    let image = image_io::open(&image_path)?;
    let masks = image_io::list(&dir.join("masks"), &[".png"]).map_err(|_| DataError::MissingLabel {
        image: image_path.clone(),
        expected: dir.join("masks").join("*.png"),
    })?;
    if masks.is_empty() {
        return Err(DataError::MissingLabel { image: image_path, expected: dir.join("masks").join("*.png") });
    }
    let image_size = (image.width(), image.height());
    let mut union = GrayImage::new(image_size.0, image_size.1);
    for mask_path in &masks {
        let mask = image_io::open(mask_path)?.to_luma8();
        if mask.dimensions() != image_size {
            return Err(DataError::SizeMismatch {
                image: image_path,
                label: mask_path.clone(),
                image_size,
                label_size: mask.dimensions(),
            });
        }
        for (u, m) in union.pixels_mut().zip(mask.pixels()) {
            u.0[0] = u.0[0].max(m.0[0]);
        }
    }
    Ok(LabeledImage {
        name: id,
        height: h,
        width: w,
        channels: 3,
        pixels: image_io::channel_major(&image_io::rgb(&image, h, w)),
        label: image_io::binary(&image_io::mask(&image::DynamicImage::ImageLuma8(union), h, w)),
    })
}

//! DRIVE: `training/images/21_training.tif`, `training/1st_manual/21_manual1.gif`,
//! `training/mask/21_training_mask.gif` (and the same under `test/` with `_test`), at their
//! native 565x584. Patches are drawn later ([`super::split`]); this reads the images, the
//! manual vessel labels and the field-of-view masks.

use std::path::Path;

use rayon::prelude::*;

use super::{image_io, DataError, LabeledImage};

#[derive(Debug, Clone, Copy)]
pub enum Subset {
    Training,
    Test,
}

impl Subset {
    fn folder(self) -> &'static str {
        match self {
            Subset::Training => "training",
            Subset::Test => "test",
        }
    }
}

/// A DRIVE image with its field-of-view mask (`{0, 1}`, `[H, W]`).
#[derive(Debug, Clone)]
pub struct DriveImage {
    pub image: LabeledImage,
    pub fov: Vec<u8>,
}

pub fn load(root: &Path, subset: Subset, limit: Option<usize>) -> Result<Vec<DriveImage>, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingFolder(root.to_path_buf()));
    }
    let base = root.join(subset.folder());
    let image_dir = base.join("images");
    let mut files = image_io::list(&image_dir, &[".tif", ".tiff"])?;
    if files.is_empty() {
        return Err(DataError::Empty { folder: image_dir, what: "*.tif fundus images".into() });
    }
    files.truncate(limit.unwrap_or(usize::MAX));
    files
        .par_iter()
        .map(|image_path| {
            let stem = image_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            // "21_training" -> "21"; "01_test" -> "01".
            let number = stem.split('_').next().unwrap_or_default().to_string();
            let label_path = base.join("1st_manual").join(format!("{number}_manual1.gif"));
            let fov_path = base.join("mask").join(format!("{stem}_mask.gif"));
            for expected in [&label_path, &fov_path] {
                if !expected.is_file() {
                    return Err(DataError::MissingLabel { image: image_path.clone(), expected: expected.clone() });
                }
            }
            let image = image_io::open(image_path)?;
            let (w, h) = (image.width(), image.height());
            let read_mask = |path: &Path| -> Result<Vec<u8>, DataError> {
                let mask = image_io::open(path)?;
                if (mask.width(), mask.height()) != (w, h) {
                    return Err(DataError::SizeMismatch {
                        image: image_path.clone(),
                        label: path.to_path_buf(),
                        image_size: (w, h),
                        label_size: (mask.width(), mask.height()),
                    });
                }
                Ok(image_io::binary(&image_io::mask(&mask, h as usize, w as usize)))
            };
            let label = read_mask(&label_path)?;
            let fov = read_mask(&fov_path)?;
            let (h, w) = (h as usize, w as usize);
            let pixels = image_io::channel_major(&image_io::rgb(&image, h, w));
            Ok(DriveImage { image: LabeledImage { name: stem, height: h, width: w, channels: 3, pixels, label }, fov })
        })
        .collect()
}

//! ISIC 2018 Task 1: `ISIC2018_Task1-2_Training_Input/ISIC_XXXXXXX.jpg` with
//! `ISIC2018_Task1_Training_GroundTruth/ISIC_XXXXXXX_segmentation.png`, resized (the paper: 192x256).

use std::path::Path;

use rayon::prelude::*;

use super::{image_io, DataError, LabeledImage};

pub const IMAGES: &str = "ISIC2018_Task1-2_Training_Input";
pub const LABELS: &str = "ISIC2018_Task1_Training_GroundTruth";

pub fn load(root: &Path, h: usize, w: usize, limit: Option<usize>) -> Result<Vec<LabeledImage>, DataError> {
    if !root.is_dir() {
        return Err(DataError::MissingFolder(root.to_path_buf()));
    }
    let image_dir = root.join(IMAGES);
    let mut files = image_io::list(&image_dir, &[".jpg", ".jpeg"])?;
    if files.is_empty() {
        return Err(DataError::Empty { folder: image_dir, what: "ISIC_*.jpg images".into() });
    }
    files.truncate(limit.unwrap_or(usize::MAX));
    files
        .par_iter()
        .map(|image_path| {
            let stem = image_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let label_path = root.join(LABELS).join(format!("{stem}_segmentation.png"));
            if !label_path.is_file() {
                return Err(DataError::MissingLabel { image: image_path.clone(), expected: label_path });
            }
            let image = image_io::open(image_path)?;
            let label = image_io::open(&label_path)?;
            let (image_size, label_size) = ((image.width(), image.height()), (label.width(), label.height()));
            if image_size != label_size {
                return Err(DataError::SizeMismatch {
                    image: image_path.clone(),
                    label: label_path,
                    image_size,
                    label_size,
                });
            }
            Ok(LabeledImage {
                name: stem,
                height: h,
                width: w,
                channels: 3,
                pixels: image_io::channel_major(&image_io::rgb(&image, h, w)),
                label: image_io::binary(&image_io::mask(&label, h, w)),
            })
        })
        .collect()
}

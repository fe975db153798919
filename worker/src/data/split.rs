//! Cutting source images into samples and splitting them 80:20 from a seed.
//!
//! The split seed is the data set's (`dataset.split_seed`), not the trial's: trials that
//! differ only in their seed train and test on the same samples, so they can be paired.

use std::sync::Arc;

use allsweep_config::dataset::{DrivePatches, SplitLevel};
use allsweep_config::DatasetConfig;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::drive::DriveImage;
use super::{DataError, LabeledImage, LoadedData, Sample, Split};

/// A seeded generator for one purpose (`stream`) of one seed.
pub fn rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// How many of `n` go to training: the fraction, rounded, leaving at least one on each side.
fn train_count(n: usize, fraction: f64) -> usize {
    ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
}

/// ISIC, DSB, synthetic: each image is one sample; the held-out images validate and test.
pub fn whole_images(
    images: Vec<LabeledImage>,
    config: &DatasetConfig,
    h: usize,
    w: usize,
) -> Result<LoadedData, DataError> {
    if images.len() < 2 {
        return Err(DataError::TooSmall(format!("{} image(s) found; at least 2 are needed for a split", images.len())));
    }
    let mut order: Vec<u32> = (0..images.len() as u32).collect();
    order.shuffle(&mut rng(config.split_seed, 0));
    let n_train = train_count(order.len(), config.train_fraction);
    let images = Arc::new(images);
    let side = |ids: &[u32]| Split {
        images: images.clone(),
        samples: ids.iter().map(|&image| Sample { image, y: 0, x: 0 }).collect(),
        height: h,
        width: w,
    };
    let (train, heldout) = order.split_at(n_train);
    if config.validation_fraction > 0.0 {
        // The Focal Tversky protocol: validation carved out of the training part; the held-out
        // part is only tested on.
        let (train, Some(validation)) = carve_validation(train, config.validation_fraction)? else {
            unreachable!("a validation fraction above 0 carves a validation part")
        };
        return Ok(LoadedData {
            train: side(train),
            validation: side(validation),
            test: side(heldout),
            split_description: format!(
                "by image: {} train / {} validation / {} test, split seed {}",
                train.len(),
                validation.len(),
                heldout.len(),
                config.split_seed
            ),
        });
    }
    Ok(LoadedData {
        train: side(train),
        validation: side(heldout),
        test: side(heldout),
        split_description: format!(
            "by image: {} train / {} held out (validation and test), split seed {}",
            train.len(),
            heldout.len(),
            config.split_seed
        ),
    })
}

/// DRIVE: patches drawn per source image, split by source image (default) or by patch.
pub fn drive_patches(
    training: Vec<DriveImage>,
    official_test: Option<Vec<DriveImage>>,
    config: &DatasetConfig,
    patches: &DrivePatches,
) -> Result<LoadedData, DataError> {
    let (h, w) = (config.size.0 as usize, config.size.1 as usize);
    if training.len() < 2 && patches.split == SplitLevel::Image {
        return Err(DataError::TooSmall("a split by source image needs at least 2 DRIVE images".into()));
    }
    let mut per_image = Vec::with_capacity(training.len());
    for (i, image) in training.iter().enumerate() {
        per_image.push(sample_patches(image, i as u32, h, w, patches, rng(config.split_seed, 1 + i as u64))?);
    }
    let (train, validation, heldout, description) = match patches.split {
        SplitLevel::Image => {
            let mut order: Vec<usize> = (0..training.len()).collect();
            order.shuffle(&mut rng(config.split_seed, 0));
            let (a, b) = order.split_at(train_count(order.len(), config.train_fraction));
            let (a, v) = carve_validation(a, config.validation_fraction)?;
            let gather = |ids: &[usize]| ids.iter().flat_map(|&i| per_image[i].iter().copied()).collect::<Vec<_>>();
            let names =
                |ids: &[usize]| ids.iter().map(|&i| training[i].image.name.clone()).collect::<Vec<_>>().join(" ");
            let validation = v.map(|v| (gather(v), format!("{} validation images ({}) / ", v.len(), names(v))));
            let description = format!(
                "DRIVE by source image: {} train / {}{} held out images ({}), {} patches of {h}x{w} each, split seed {}",
                a.len(),
                validation.as_ref().map_or("", |(_, said)| said.as_str()),
                b.len(),
                names(b),
                patches.per_image,
                config.split_seed
            );
            (gather(a), validation.map(|(samples, _)| samples), gather(b), description)
        }
        SplitLevel::Patch => {
            let mut all: Vec<Sample> = per_image.into_iter().flatten().collect();
            if all.len() < 2 {
                return Err(DataError::TooSmall("a split needs at least 2 patches".into()));
            }
            all.shuffle(&mut rng(config.split_seed, 0));
            let n_train = train_count(all.len(), config.train_fraction);
            let heldout = all.split_off(n_train);
            let (train, validation) = match carve_validation(&all, config.validation_fraction)? {
                (train, Some(validation)) => (train.to_vec(), Some(validation.to_vec())),
                (_, None) => (all, None),
            };
            let description = format!(
                "DRIVE by patch (the paper's protocol; overlapping patches of one image fall on both sides): {} train / {}{} held out patches of {h}x{w}, split seed {}",
                train.len(),
                validation.as_ref().map_or(String::new(), |v| format!("{} validation / ", v.len())),
                heldout.len(),
                config.split_seed
            );
            (train, validation, heldout, description)
        }
    };
    let training_images = Arc::new(training.into_iter().map(|d| d.image).collect::<Vec<_>>());
    let side = |samples: Vec<Sample>| Split { images: training_images.clone(), samples, height: h, width: w };
    let heldout = side(heldout);
    let validation = validation.map(side).unwrap_or_else(|| heldout.clone());
    let (test, description) = match official_test {
        None => (heldout, description),
        Some(test_images) => {
            let mut samples = Vec::new();
            for (i, image) in test_images.iter().enumerate() {
                samples.extend(sample_patches(
                    image,
                    i as u32,
                    h,
                    w,
                    patches,
                    rng(config.split_seed, 10_000 + i as u64),
                )?);
            }
            let images = Arc::new(test_images.into_iter().map(|d| d.image).collect::<Vec<_>>());
            let n = images.len();
            (
                Split { images, samples, height: h, width: w },
                format!("{description}; test on the {n} official test images"),
            )
        }
    };
    Ok(LoadedData { train: side(train), validation, test, split_description: description })
}

/// Splits `validation_fraction` of the training part (the last ones of its shuffled order)
/// off as a validation part; none when the fraction is 0.
fn carve_validation<T>(train: &[T], validation_fraction: f64) -> Result<(&[T], Option<&[T]>), DataError> {
    if validation_fraction == 0.0 {
        return Ok((train, None));
    }
    if train.len() < 2 {
        return Err(DataError::TooSmall("the training part is too small to hold out a validation set".into()));
    }
    let (train, validation) = train.split_at(train_count(train.len(), 1.0 - validation_fraction));
    Ok((train, Some(validation)))
}

/// Draws the patches of one image: `edge_fraction` of them centred in the field of view but
/// crossing its edge, the rest wholly inside it (the FOV is a disc, so a patch whose four
/// corners are inside is inside).
pub(super) fn sample_patches(
    image: &DriveImage,
    index: u32,
    h: usize,
    w: usize,
    patches: &DrivePatches,
    mut rng: ChaCha8Rng,
) -> Result<Vec<Sample>, DataError> {
    let (ih, iw) = (image.image.height, image.image.width);
    if ih < h || iw < w {
        return Err(DataError::TooSmall(format!(
            "DRIVE image {} is {ih}x{iw}, smaller than a {h}x{w} patch",
            image.image.name
        )));
    }
    let in_fov = |y: usize, x: usize| image.fov[y * iw + x] == 1;
    let n_edge = (patches.per_image as f64 * patches.edge_fraction).round() as usize;
    let n_inside = patches.per_image - n_edge;
    let (mut inside, mut edge) = (Vec::with_capacity(n_inside), Vec::with_capacity(n_edge));
    let max_attempts = 1000 * patches.per_image.max(10);
    for _ in 0..max_attempts {
        if inside.len() == n_inside && edge.len() == n_edge {
            break;
        }
        let (y, x) = (rng.random_range(0..=ih - h), rng.random_range(0..=iw - w));
        if !in_fov(y + h / 2, x + w / 2) {
            continue;
        }
        let corners_inside =
            in_fov(y, x) && in_fov(y, x + w - 1) && in_fov(y + h - 1, x) && in_fov(y + h - 1, x + w - 1);
        let sample = Sample { image: index, y: y as u32, x: x as u32 };
        if corners_inside && inside.len() < n_inside {
            inside.push(sample);
        } else if !corners_inside && edge.len() < n_edge {
            edge.push(sample);
        }
    }
    if inside.len() < n_inside || edge.len() < n_edge {
        return Err(DataError::TooSmall(format!(
            "could not place {n_inside} inside and {n_edge} edge patches of {h}x{w} in the field of view of {}",
            image.image.name
        )));
    }
    inside.extend(edge);
    Ok(inside)
}

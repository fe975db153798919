//! Loaders on the real data in `shared/data` (DRIVE, one DSB image), on ISIC-layout files the
//! tests write, and on every kind of bad data a user might point allsweep at, each with whose
//! fault it is.

use std::path::{Path, PathBuf};

use allsweep_config::dataset::{DrivePatches, SplitLevel, SyntheticData, SyntheticShape, TestSet};
use allsweep_config::DatasetConfig;
use image::{GrayImage, Luma, Rgb, RgbImage};

use super::*;

fn shared_data() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data");
    assert!(dir.is_dir(), "the real data is expected at {} (shared/ beside the checkout)", dir.display());
    dir
}

fn dataset(text: &str) -> DatasetConfig {
    DatasetConfig::from_table(&text.parse().expect("TOML"), "dataset").expect("valid dataset config")
}

#[test]
fn drive_reads_twenty_training_images_with_labels_and_fields_of_view() {
    let images = drive::load(&shared_data().join("DRIVE"), drive::Subset::Training, None).unwrap();
    assert_eq!(images.len(), 20);
    for d in &images {
        assert_eq!((d.image.height, d.image.width, d.image.channels), (584, 565, 3), "{}", d.image.name);
        let fov_share = d.fov.iter().map(|&v| v as f64).sum::<f64>() / d.fov.len() as f64;
        assert!((0.6..0.8).contains(&fov_share), "{}: field of view covers {fov_share}", d.image.name);
        let vessels = d.image.foreground_fraction();
        assert!((0.05..0.2).contains(&vessels), "{}: vessel share {vessels}", d.image.name);
        // Vessels lie inside the field of view.
        let outside = d.image.label.iter().zip(&d.fov).filter(|(l, f)| **l == 1 && **f == 0).count();
        let total = d.image.label.iter().filter(|&&l| l == 1).count();
        assert!(outside * 100 < total, "{}: {outside} of {total} vessel pixels outside the FOV", d.image.name);
    }
    assert_eq!(images[0].image.name, "21_training");
    let test = drive::load(&shared_data().join("DRIVE"), drive::Subset::Test, Some(3)).unwrap();
    assert_eq!(test.len(), 3);
    assert_eq!(test[0].image.name, "01_test");
}

#[test]
fn drive_patches_are_split_by_source_image_and_mostly_inside_the_fov() {
    let config = dataset("kind = \"drive\"\nroot = \"DRIVE\"\nlimit = 5\npatches_per_image = 40\nedge_fraction = 0.25");
    let data = load_uncached(&config, Some(&shared_data())).unwrap();
    assert_eq!(data.train.len() + data.validation.len(), 5 * 40);
    assert_eq!((data.train.len(), data.validation.len()), (160, 40), "4 images train, 1 held out");
    let train_images: std::collections::BTreeSet<u32> = data.train.samples.iter().map(|s| s.image).collect();
    assert!(data.validation.samples.iter().all(|s| !train_images.contains(&s.image)), "no source image on both sides");
    assert!(data.split_description.contains("by source image"), "{}", data.split_description);
    let (input, target) = data.train.batch(&[0, 1, 2], tch::Device::Cpu);
    assert_eq!(input.size(), [3, 3, 48, 48]);
    assert_eq!(target.size(), [3, 1, 48, 48]);
    // The batch is the crop of its source image.
    let s = data.train.samples[0];
    let image = &data.train.images[s.image as usize];
    let (y, x) = (s.y as usize + 10, s.x as usize + 20);
    let expected = image.pixels[image.height * image.width + y * image.width + x] as f64 / 255.0;
    assert!((input.double_value(&[0, 1, 10, 20]) - expected).abs() < 1e-6);
    assert_eq!(target.double_value(&[0, 0, 10, 20]), image.label[y * image.width + x] as f64);
    // Same seed, same patches; the paper's patch-level split on request.
    let again = load_uncached(&config, Some(&shared_data())).unwrap();
    assert_eq!(again.train.samples, data.train.samples);
    let patch_level =
        dataset("kind = \"drive\"\nroot = \"DRIVE\"\nlimit = 5\npatches_per_image = 40\nsplit = \"patch\"");
    let data = load_uncached(&patch_level, Some(&shared_data())).unwrap();
    assert_eq!((data.train.len(), data.validation.len()), (160, 40));
    assert!(data.split_description.contains("by patch"));
}

#[test]
fn drive_holds_a_validation_part_out_of_its_training_images_or_patches() {
    let by_image = "kind = \"drive\"\nroot = \"DRIVE\"\nlimit = 10\npatches_per_image = 20\nvalidation_fraction = 0.25";
    let data = load_uncached(&dataset(by_image), Some(&shared_data())).unwrap();
    // 8 training images (6 train, 2 validate), 2 held out for the test.
    assert_eq!((data.train.len(), data.validation.len(), data.test.len()), (120, 40, 40));
    let images = |split: &Split| split.samples.iter().map(|s| s.image).collect::<std::collections::BTreeSet<u32>>();
    let (train, validation, test) = (images(&data.train), images(&data.validation), images(&data.test));
    assert_eq!((train.len(), validation.len(), test.len()), (6, 2, 2));
    assert!(train.is_disjoint(&validation) && train.is_disjoint(&test) && validation.is_disjoint(&test));
    assert!(data.split_description.contains("2 validation images"), "{}", data.split_description);

    let by_patch = format!("{by_image}\nsplit = \"patch\"");
    let data = load_uncached(&dataset(&by_patch), Some(&shared_data())).unwrap();
    assert_eq!((data.train.len(), data.validation.len(), data.test.len()), (120, 40, 40));
    let key = |s: &crate::data::Sample| (s.image, s.y, s.x);
    let test: std::collections::BTreeSet<_> = data.test.samples.iter().map(key).collect();
    assert!(data.validation.samples.iter().all(|s| !test.contains(&key(s))), "validation patches are not test patches");
    assert!(data.split_description.contains("40 validation / 40 held out"), "{}", data.split_description);
}

#[test]
fn drive_edge_patches_cross_the_field_of_view_and_the_rest_do_not() {
    let images = drive::load(&shared_data().join("DRIVE"), drive::Subset::Training, Some(1)).unwrap();
    let patches = DrivePatches { per_image: 100, edge_fraction: 0.2, split: SplitLevel::Image, test: TestSet::Heldout };
    let samples = split::sample_patches(&images[0], 0, 48, 48, &patches, split::rng(0, 1)).unwrap();
    let fov = &images[0].fov;
    let w = images[0].image.width;
    let crosses = |s: &Sample| (s.y..s.y + 48).any(|y| (s.x..s.x + 48).any(|x| fov[y as usize * w + x as usize] == 0));
    assert_eq!(samples.iter().filter(|s| crosses(s)).count(), 20);
}

#[test]
fn dsb_unions_the_masks_of_each_nucleus() {
    let root = shared_data().join("dsb2018-sample/stage1_train");
    let images = dsb::load(&root, 512, 512, None).unwrap();
    assert_eq!(images.len(), 1);
    let masks = image_io::list(&root.join("stardist-img2d/masks"), &[".png"]).unwrap();
    assert_eq!(masks.len(), 125);
    let mut union = vec![0_u8; 512 * 512];
    for path in &masks {
        for (u, p) in union.iter_mut().zip(image::open(path).unwrap().to_luma8().pixels()) {
            *u |= u8::from(p.0[0] > 0);
        }
    }
    assert_eq!(images[0].label, union, "label = union of the 125 nucleus masks");
    assert_eq!(images[0].channels, 3, "RGBA read as RGB");
    let resized = dsb::load(&root, 128, 128, None).unwrap();
    assert_eq!(resized[0].label.len(), 128 * 128);
    let share = (resized[0].foreground_fraction() - images[0].foreground_fraction()).abs();
    assert!(share < 0.02, "resizing keeps the foreground share");
}

/// Writes an ISIC-layout folder: `n` JPEG images of 300x200 with centred lesion masks.
fn write_isic(root: &Path, n: usize) {
    std::fs::create_dir_all(root.join(isic::IMAGES)).unwrap();
    std::fs::create_dir_all(root.join(isic::LABELS)).unwrap();
    for i in 0..n {
        let image = RgbImage::from_fn(300, 200, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 128]));
        image.save(root.join(isic::IMAGES).join(format!("ISIC_{i:07}.jpg"))).unwrap();
        let mask = GrayImage::from_fn(300, 200, |x, _| Luma([if (100..200).contains(&x) { 255 } else { 0 }]));
        mask.save(root.join(isic::LABELS).join(format!("ISIC_{i:07}_segmentation.png"))).unwrap();
    }
}

#[test]
fn isic_layout_is_read_and_resized_to_192x256() {
    let dir = tempfile::tempdir().unwrap();
    write_isic(dir.path(), 5);
    let config = dataset(&format!("kind = \"isic2018\"\nroot = \"{}\"", dir.path().display()));
    let data = load_uncached(&config, None).unwrap();
    assert_eq!((data.train.len(), data.validation.len()), (4, 1));
    let image = &data.train.images[0];
    assert_eq!((image.height, image.width), (192, 256));
    assert!((image.foreground_fraction() - 1.0 / 3.0).abs() < 0.01);
    assert!(image.label.iter().all(|&v| v <= 1));
}

#[test]
fn the_focal_tversky_split_holds_validation_out_of_the_training_part() {
    let config = dataset("kind = \"synthetic\"\nimages = 40\ntrain_fraction = 0.75\nvalidation_fraction = 0.15");
    let data = load_uncached(&config, None).unwrap();
    assert_eq!((data.train.len(), data.validation.len(), data.test.len()), (26, 4, 10));
    let sides = [&data.train, &data.validation, &data.test];
    let ids: std::collections::BTreeSet<u32> = sides.iter().flat_map(|s| s.samples.iter().map(|x| x.image)).collect();
    assert_eq!(ids.len(), 40, "no image on two sides");
    assert!(data.split_description.contains("26 train / 4 validation / 10 test"));
}

fn error_of(config: &DatasetConfig, data_dir: Option<&Path>) -> String {
    load_uncached(config, data_dir).expect_err("bad data must be refused").to_string()
}

#[test]
fn bad_data_gets_errors_that_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let isic = |root: &Path| dataset(&format!("kind = \"isic2018\"\nroot = \"{}\"", root.display()));

    let missing = dir.path().join("nowhere");
    assert!(error_of(&isic(&missing), None).contains("nowhere"), "missing folder");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(empty.join(isic::IMAGES)).unwrap();
    let err = error_of(&isic(&empty), None);
    assert!(err.contains("no ISIC_*.jpg images found") && err.contains(isic::IMAGES), "{err}");

    let unlabeled = dir.path().join("unlabeled");
    write_isic(&unlabeled, 3);
    std::fs::remove_file(unlabeled.join(isic::LABELS).join("ISIC_0000001_segmentation.png")).unwrap();
    let err = error_of(&isic(&unlabeled), None);
    assert!(err.contains("ISIC_0000001.jpg has no label") && err.contains("ISIC_0000001_segmentation.png"), "{err}");

    let other_size = dir.path().join("other_size");
    write_isic(&other_size, 3);
    GrayImage::new(64, 64).save(other_size.join(isic::LABELS).join("ISIC_0000002_segmentation.png")).unwrap();
    let err = error_of(&isic(&other_size), None);
    assert!(
        err.contains("ISIC_0000002_segmentation.png") && err.contains("(64, 64)") && err.contains("(300, 200)"),
        "{err}"
    );

    let truncated = dir.path().join("truncated");
    write_isic(&truncated, 3);
    let path = truncated.join(isic::IMAGES).join("ISIC_0000000.jpg");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let err = error_of(&isic(&truncated), None);
    assert!(err.contains("cannot read") && err.contains("ISIC_0000000.jpg"), "{err}");

    let garbage = dir.path().join("garbage");
    write_isic(&garbage, 3);
    std::fs::write(garbage.join(isic::LABELS).join("ISIC_0000001_segmentation.png"), b"not a png").unwrap();
    assert!(error_of(&isic(&garbage), None).contains("ISIC_0000001_segmentation.png"));

    let lonely = dir.path().join("lonely");
    write_isic(&lonely, 1);
    assert!(error_of(&isic(&lonely), None).contains("at least 2"), "one image cannot be split");

    let drive = dataset("kind = \"drive\"\nroot = \"DRIVE\"");
    let err = error_of(&drive, Some(dir.path()));
    assert!(
        err.contains("DRIVE") && err.contains("does not exist"),
        "relative root resolved against the data dir: {err}"
    );

    let dsb_root = dir.path().join("dsb");
    std::fs::create_dir_all(dsb_root.join("abc/images")).unwrap();
    RgbImage::new(16, 16).save(dsb_root.join("abc/images/abc.png")).unwrap();
    let err = dsb::load(&dsb_root, 16, 16, None).expect_err("no masks").to_string();
    assert!(err.contains("abc.png has no label"), "{err}");
}

fn fault_of(config: &DatasetConfig, data_dir: Option<&Path>) -> TrialFault {
    load_uncached(config, data_dir).expect_err("bad data must be refused").fault()
}

#[test]
fn only_data_missing_on_this_machine_is_the_worker_s_fault() {
    let dir = tempfile::tempdir().unwrap();
    let isic = |root: &Path| dataset(&format!("kind = \"isic2018\"\nroot = \"{}\"", root.display()));
    let drive = dataset("kind = \"drive\"\nroot = \"DRIVE\"");
    assert_eq!(fault_of(&drive, Some(dir.path())), TrialFault::Worker, "no DRIVE under the data dir");
    assert_eq!(fault_of(&isic(&dir.path().join("nowhere")), None), TrialFault::Worker, "missing root");
    std::fs::create_dir_all(dir.path().join("unmounted")).unwrap();
    assert_eq!(fault_of(&isic(&dir.path().join("unmounted")), None), TrialFault::Worker, "empty mount point");
    let partial = dir.path().join("partial");
    write_isic(&partial, 3);
    std::fs::remove_file(partial.join(isic::LABELS).join("ISIC_0000001_segmentation.png")).unwrap();
    assert_eq!(fault_of(&isic(&partial), None), TrialFault::Worker, "a file missing from this copy");

    let truncated = dir.path().join("truncated");
    write_isic(&truncated, 3);
    let path = truncated.join(isic::IMAGES).join("ISIC_0000000.jpg");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    assert_eq!(fault_of(&isic(&truncated), None), TrialFault::Permanent, "a malformed image");
    let other_size = dir.path().join("other_size");
    write_isic(&other_size, 3);
    GrayImage::new(64, 64).save(other_size.join(isic::LABELS).join("ISIC_0000002_segmentation.png")).unwrap();
    assert_eq!(fault_of(&isic(&other_size), None), TrialFault::Permanent, "a label of another size");
    let lonely = dir.path().join("lonely");
    write_isic(&lonely, 1);
    assert_eq!(fault_of(&isic(&lonely), None), TrialFault::Permanent, "too few images for a split");
}

#[test]
fn a_file_system_refusal_is_the_machine_s_and_other_io_errors_may_clear() {
    let io = |kind: std::io::ErrorKind| DataError::Io { path: "x.png".into(), source: kind.into() }.fault();
    assert_eq!(io(std::io::ErrorKind::NotFound), TrialFault::Worker);
    assert_eq!(io(std::io::ErrorKind::PermissionDenied), TrialFault::Worker);
    assert_eq!(io(std::io::ErrorKind::Interrupted), TrialFault::Retry);
}

#[test]
fn synthetic_data_reaches_its_foreground_share_and_is_reproducible() {
    for (shape, fg) in [(SyntheticShape::Blobs, 0.3), (SyntheticShape::Nuclei, 0.15), (SyntheticShape::Vessels, 0.1)] {
        let config = SyntheticData { shape, images: 4, foreground: fg, channels: 3, seed: 5 };
        let images = synthetic::generate(&config, 64, 96);
        for image in &images {
            let share = image.foreground_fraction();
            assert!((share - fg).abs() < 0.6 * fg, "{shape:?}: share {share} for target {fg}");
            assert_eq!(image.pixels.len(), 3 * 64 * 96);
        }
        let again = synthetic::generate(&config, 64, 96);
        assert_eq!(images[1].label, again[1].label, "{shape:?} is reproducible");
        assert_ne!(images[0].label, images[1].label, "{shape:?} images differ");
    }
}

#[test]
fn a_resident_split_gives_the_batches_the_host_assembles() {
    let config = dataset("kind = \"drive\"\nroot = \"DRIVE\"\nlimit = 3\npatches_per_image = 9");
    let data = load_uncached(&config, Some(&shared_data())).unwrap();
    // On the CPU here; the trainer makes its splits resident on a GPU, by the same code.
    let resident = ResidentSplit::new(&data.train, tch::Device::Cpu);
    for indices in [vec![0, 1, 2], vec![17, 3, 3, 5], (0..data.train.len()).rev().collect()] {
        let (host_input, host_target) = data.train.batch(&indices, tch::Device::Cpu);
        let (input, target) = resident.batch(&indices);
        assert_eq!((input.kind(), target.kind()), (tch::Kind::Float, tch::Kind::Float));
        assert_eq!(input, host_input, "inputs of {indices:?}");
        assert_eq!(target, host_target, "targets of {indices:?}");
    }
    let empty = Split { samples: Vec::new(), ..data.train.clone() };
    assert_eq!(ResidentSplit::new(&empty, tch::Device::Cpu).batch(&[]).0.size(), [0, 3, 48, 48]);
}

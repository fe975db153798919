//! Which data set, where it lives, how it is cut into samples and split.
//!
//! One `[dataset]` table for the four kinds; keys that only one kind takes (`patches_per_image`
//! for DRIVE, `shape` for synthetic data) are refused for the others as unknown keys.

use serde::Serialize;
use toml::{Table, Value};

use crate::params::{describe, ParamError, ParamReader};

/// The data sets allsweep reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    /// ISIC 2018 Task 1 skin lesions (JPEG images, PNG masks).
    Isic2018,
    /// Data Science Bowl 2018 nuclei (`stage1_train`, one mask per nucleus).
    Dsb2018,
    /// DRIVE retinal vessels: 48x48 patches of the training images.
    Drive,
    /// Generated from a seed: no download needed.
    Synthetic,
}

impl DatasetKind {
    pub fn name(&self) -> &'static str {
        match self {
            DatasetKind::Isic2018 => "isic2018",
            DatasetKind::Dsb2018 => "dsb2018",
            DatasetKind::Drive => "drive",
            DatasetKind::Synthetic => "synthetic",
        }
    }

    /// The paper's input size (height, width).
    pub fn default_size(&self) -> (i64, i64) {
        match self {
            DatasetKind::Isic2018 => (192, 256),
            DatasetKind::Dsb2018 => (128, 128),
            DatasetKind::Drive | DatasetKind::Synthetic => (48, 48),
        }
    }
}

/// How the held-out 20% is chosen for DRIVE: whole source images (no patch of a held-out
/// image is trained on; the default) or individual patches (the paper's protocol, whose
/// overlapping patches leak between the sides).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitLevel {
    Image,
    Patch,
}

/// What the final test metrics are computed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestSet {
    /// The held-out part of the split (also the per-epoch validation set, as in the paper).
    Heldout,
    /// DRIVE's official test images, cut into patches the same way.
    Official,
}

/// The shape family of synthetic data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyntheticShape {
    /// Large smooth blobs, like ISIC lesions.
    Blobs,
    /// Many small round nuclei, like DSB 2018.
    Nuclei,
    /// Thin branching curves, like retinal vessels.
    Vessels,
}

/// DRIVE patch sampling.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DrivePatches {
    /// Patches drawn from each source image (the paper: 10,000).
    pub per_image: usize,
    /// Share of patches centred in the field of view but crossing its edge; the rest lie wholly inside.
    pub edge_fraction: f64,
    /// Held-out split by source image or by patch.
    pub split: SplitLevel,
    /// Test metrics on the held-out part or on the official test images.
    pub test: TestSet,
}

/// Synthetic data generation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SyntheticData {
    pub shape: SyntheticShape,
    /// Number of images.
    pub images: usize,
    /// Target share of foreground pixels, in (0, 1).
    pub foreground: f64,
    /// Image channels, 1 to 3.
    pub channels: i64,
    /// Generator seed (the data is the same for every trial that shares it).
    pub seed: u64,
}

/// A validated `[dataset]` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetConfig {
    pub kind: DatasetKind,
    /// Folder of the data set; a relative path resolves against the worker's data directory.
    pub root: Option<String>,
    /// Input size (height, width): images are resized to it, DRIVE patches have it.
    pub size: (i64, i64),
    /// Share of samples trained on (the paper: 0.8).
    pub train_fraction: f64,
    /// Seed of the split, kept apart from the trial's seed so that trials with different
    /// seeds compare on the same split.
    pub split_seed: u64,
    /// Share of the training part held out for validation (for DRIVE, of its images or of its
    /// patches, as the split goes). 0: the held-out part both validates and tests (the
    /// paper's 80:20); 0.15 with `train_fraction = 0.75` is the Focal Tversky paper's split
    /// (Table 4).
    pub validation_fraction: f64,
    /// Use at most this many source images (small runs and demos).
    pub limit: Option<usize>,
    pub drive: Option<DrivePatches>,
    pub synthetic: Option<SyntheticData>,
}

impl DatasetConfig {
    /// Whether the samples validated on each epoch are the ones tested on at the end: the
    /// paper's 80:20 split without a `validation_fraction`, unless DRIVE tests on its
    /// official test images.
    pub fn validation_is_test(&self) -> bool {
        let official_test = self.drive.is_some_and(|d| d.test == TestSet::Official);
        self.validation_fraction == 0.0 && !official_test
    }
}

const KINDS: [&str; 4] = ["isic2018", "dsb2018", "drive", "synthetic"];

impl DatasetConfig {
    /// Parses the `[dataset]` table.
    pub fn from_table(table: &Table, prefix: &str) -> Result<Self, ParamError> {
        let mut r = ParamReader::new(table, prefix);
        if !table.contains_key("kind") {
            return Err(r.error("kind", format!("missing; one of {}", KINDS.join(", "))));
        }
        let kind = match r.choice("kind", "synthetic", &KINDS)? {
            "isic2018" => DatasetKind::Isic2018,
            "dsb2018" => DatasetKind::Dsb2018,
            "drive" => DatasetKind::Drive,
            _ => DatasetKind::Synthetic,
        };
        let root = match r.raw("root") {
            None if kind == DatasetKind::Synthetic => None,
            None => return Err(r.error("root", format!("missing; the folder of the {} data", kind.name()))),
            Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
            Some(other) => return Err(r.error("root", format!("expected a folder path, found {}", describe(other)))),
        };
        let size = size(&mut r, kind.default_size())?;
        let train_fraction = r.number("train_fraction", 0.8, |v| v > 0.0 && v < 1.0, "in (0, 1)")?;
        let split_seed = r.number("split_seed", 0.0, |v| v >= 0.0 && v.fract() == 0.0, "a whole number >= 0")? as u64;
        let validation_fraction = r.number("validation_fraction", 0.0, |v| (0.0..0.9).contains(&v), "in [0, 0.9)")?;
        let limit = match r.raw("limit") {
            None => None,
            Some(Value::Integer(n)) if *n >= 2 => Some(*n as usize),
            Some(other) => return Err(r.error("limit", format!("expected an integer >= 2, found {}", describe(other)))),
        };
        let drive = (kind == DatasetKind::Drive).then(|| drive_patches(&mut r)).transpose()?;
        let synthetic = (kind == DatasetKind::Synthetic).then(|| synthetic(&mut r)).transpose()?;
        r.finish()?;
        Ok(Self { kind, root, size, train_fraction, split_seed, validation_fraction, limit, drive, synthetic })
    }
}

fn size(r: &mut ParamReader, default: (i64, i64)) -> Result<(i64, i64), ParamError> {
    let pair = match r.raw("size") {
        None => return Ok(default),
        Some(Value::Array(items)) if items.len() == 2 => (items[0].as_integer(), items[1].as_integer()),
        Some(other) => return Err(r.error("size", format!("expected [height, width], found {}", describe(other)))),
    };
    match pair {
        (Some(h), Some(w)) if h > 0 && w > 0 && h % 16 == 0 && w % 16 == 0 => Ok((h, w)),
        _ => Err(r.error("size", "both sides must be positive multiples of 16 (e.g. [48, 48], [192, 256])")),
    }
}

fn drive_patches(r: &mut ParamReader) -> Result<DrivePatches, ParamError> {
    let per_image = r.positive_integer("patches_per_image", 10_000)? as usize;
    let edge_fraction = r.number("edge_fraction", 0.1, |v| (0.0..=1.0).contains(&v), "in [0, 1]")?;
    let split = match r.choice("split", "image", &["image", "patch"])? {
        "patch" => SplitLevel::Patch,
        _ => SplitLevel::Image,
    };
    let test = match r.choice("test", "heldout", &["heldout", "official"])? {
        "official" => TestSet::Official,
        _ => TestSet::Heldout,
    };
    Ok(DrivePatches { per_image, edge_fraction, split, test })
}

fn synthetic(r: &mut ParamReader) -> Result<SyntheticData, ParamError> {
    let shape = match r.choice("shape", "vessels", &["blobs", "nuclei", "vessels"])? {
        "blobs" => SyntheticShape::Blobs,
        "nuclei" => SyntheticShape::Nuclei,
        _ => SyntheticShape::Vessels,
    };
    let images = r.positive_integer("images", 64)? as usize;
    if images < 2 {
        return Err(r.error("images", "at least 2 are needed for a split"));
    }
    let foreground = r.number("foreground", 0.1, |v| v > 0.0 && v < 1.0, "in (0, 1)")?;
    let channels = r.positive_integer("channels", 3)?;
    if channels > 3 {
        return Err(r.error("channels", format!("must be 1, 2 or 3, got {channels}")));
    }
    let seed = r.number("seed", 0.0, |v| v >= 0.0 && v.fract() == 0.0, "a whole number >= 0")? as u64;
    Ok(SyntheticData { shape, images, foreground, channels, seed })
}

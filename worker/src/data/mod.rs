//! Data sets: the paper's three in their publishers' folder layouts, and synthetic look-alikes.
//!
//! Every loader produces the same thing, [`LoadedData`]: source images held in memory as
//! bytes (`[0, 255]` pixels, `{0, 1}` labels) and, for each of the train, validation and
//! test sides, a list of [`Sample`] windows into them: a whole resized image for ISIC and
//! DSB, a 48x48 patch for DRIVE. Batches are assembled from windows on demand, so 200,000
//! DRIVE patches cost 12 bytes each rather than 36 KB.
//!
//! A loaded data set is cached per process ([`cache`]): the slots of a worker share it.

pub mod cache;
mod drive;
mod dsb;
mod image_io;
mod isic;
mod split;
pub mod synthetic;

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use allsweep_config::dataset::{DatasetKind, TestSet};
use allsweep_config::DatasetConfig;
use allsweep_proto::fault::TrialFault;
use tch::{Device, Kind, Tensor};

pub use split::rng as split_rng;

/// Why a data set could not be loaded. Each names the file or folder at fault; [`DataError::fault`]
/// tells a copy missing on this machine from data that is bad everywhere.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("data folder {0} does not exist; set dataset.root (relative roots resolve against the data directory, --data-dir or ALLSWEEP_DATA)")]
    MissingFolder(PathBuf),
    /// The file system refused a read (no such file, no permission, an I/O error).
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// The file was read but is not a valid image.
    #[error("cannot read {path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("image {image} has no label: expected {expected}")]
    MissingLabel { image: PathBuf, expected: PathBuf },
    #[error("label {label} is {label_size:?} (width, height) but its image {image} is {image_size:?}")]
    SizeMismatch { image: PathBuf, label: PathBuf, image_size: (u32, u32), label_size: (u32, u32) },
    #[error("no {what} found in {folder}")]
    Empty { folder: PathBuf, what: String },
    #[error("{0}")]
    TooSmall(String),
}

impl DataError {
    /// Whose fault the error is. A folder or file missing or refused here is this machine's
    /// ([`TrialFault::Worker`]: an unmounted or partial copy; an empty folder is what an
    /// unmounted mount point looks like), another I/O error may clear ([`TrialFault::Retry`]),
    /// and data that was read but is wrong (a malformed image, mismatched sizes, too few
    /// images for the configured split) is wrong on every machine ([`TrialFault::Permanent`]).
    pub fn fault(&self) -> TrialFault {
        match self {
            DataError::MissingFolder(_) | DataError::MissingLabel { .. } | DataError::Empty { .. } => {
                TrialFault::Worker
            }
            DataError::Io { source, .. } => match source.kind() {
                ErrorKind::NotFound | ErrorKind::PermissionDenied => TrialFault::Worker,
                _ => TrialFault::Retry,
            },
            DataError::Malformed { .. } | DataError::SizeMismatch { .. } | DataError::TooSmall(_) => {
                TrialFault::Permanent
            }
        }
    }
}

/// One source image with its label, as bytes: pixels channel-major `[C, H, W]` in [0, 255],
/// label `[H, W]` in {0, 1}.
#[derive(Clone)]
pub struct LabeledImage {
    pub name: String,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub pixels: Vec<u8>,
    pub label: Vec<u8>,
}

impl std::fmt::Debug for LabeledImage {
    /// The name and shape; the pixels would drown any message.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}x{}x{}, foreground {:.3})",
            self.name,
            self.channels,
            self.height,
            self.width,
            self.foreground_fraction()
        )
    }
}

impl LabeledImage {
    /// Share of foreground pixels.
    pub fn foreground_fraction(&self) -> f64 {
        self.label.iter().map(|&v| v as u64).sum::<u64>() as f64 / self.label.len().max(1) as f64
    }
}

/// A window of one source image: its top-left corner; the size is the data set's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    pub image: u32,
    pub y: u32,
    pub x: u32,
}

/// One side of the split: windows into shared source images.
#[derive(Debug, Clone)]
pub struct Split {
    pub images: Arc<Vec<LabeledImage>>,
    pub samples: Vec<Sample>,
    pub height: usize,
    pub width: usize,
}

impl Split {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn channels(&self) -> usize {
        self.images.first().map_or(3, |i| i.channels)
    }

    /// The inputs `[B, C, H, W]` (float, [0, 1]) and targets `[B, 1, H, W]` (float, {0, 1})
    /// of the samples at `indices`, on `device`.
    pub fn batch(&self, indices: &[usize], device: Device) -> (Tensor, Tensor) {
        let (input, target) = self.batch_bytes(indices);
        (as_input(&input.to_device(device)), target.to_device(device).to_kind(Kind::Float))
    }

    /// The samples at `indices` as bytes on the host: inputs `[B, C, H, W]` in [0, 255],
    /// targets `[B, 1, H, W]` in {0, 1}.
    fn batch_bytes(&self, indices: &[usize]) -> (Tensor, Tensor) {
        let (h, w, c) = (self.height, self.width, self.channels());
        let mut inputs = Vec::with_capacity(indices.len() * c * h * w);
        let mut targets = Vec::with_capacity(indices.len() * h * w);
        for &i in indices {
            let s = self.samples[i];
            let image = &self.images[s.image as usize];
            let (y0, x0) = (s.y as usize, s.x as usize);
            for channel in 0..c {
                let plane = &image.pixels[channel * image.height * image.width..];
                for row in y0..y0 + h {
                    inputs.extend_from_slice(&plane[row * image.width + x0..row * image.width + x0 + w]);
                }
            }
            for row in y0..y0 + h {
                targets.extend_from_slice(&image.label[row * image.width + x0..row * image.width + x0 + w]);
            }
        }
        let n = indices.len() as i64;
        let input = Tensor::from_slice(&inputs).view([n, c as i64, h as i64, w as i64]);
        let target = Tensor::from_slice(&targets).view([n, 1, h as i64, w as i64]);
        (input, target)
    }
}

/// Pixels as bytes to the network's input: float in [0, 1].
fn as_input(bytes: &Tensor) -> Tensor {
    bytes.to_kind(Kind::Float) / 255.0
}

/// A split's samples held on a device as bytes, copied there once: each batch is then
/// gathered on the device, with no copy from the host per step. The trainer keeps its splits
/// this way on a GPU (DRIVE's 200,000 patches of 48x48x3 and their labels take 1.8 GB;
/// ISIC's 2,594 images at 192x256, 0.5 GB).
pub struct ResidentSplit {
    inputs: Tensor,
    targets: Tensor,
}

/// Where the trainer takes a split's batches from: assembled on the host from its bytes and
/// copied over each step (the CPU, where that is the whole cost anyway), or gathered on a GPU
/// from a [`ResidentSplit`].
pub enum Batches<'a> {
    Host { split: &'a Split, device: Device },
    Resident { split: ResidentSplit, len: usize },
}

impl<'a> Batches<'a> {
    /// Resident on a CUDA device, from the host elsewhere.
    pub fn new(split: &'a Split, device: Device) -> Self {
        if device.is_cuda() {
            Batches::Resident { split: ResidentSplit::new(split, device), len: split.len() }
        } else {
            Batches::Host { split, device }
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Batches::Host { split, .. } => split.len(),
            Batches::Resident { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch of the samples at `indices`, on the device.
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Tensor) {
        match self {
            Batches::Host { split, device } => split.batch(indices, *device),
            Batches::Resident { split, .. } => split.batch(indices),
        }
    }
}

/// Samples copied to the device at a time while a split is made resident.
const RESIDENT_CHUNK: usize = 4096;

impl ResidentSplit {
    pub fn new(split: &Split, device: Device) -> Self {
        let (mut inputs, mut targets) = (Vec::new(), Vec::new());
        let all: Vec<usize> = (0..split.len()).collect();
        for chunk in all.chunks(RESIDENT_CHUNK) {
            let (input, target) = split.batch_bytes(chunk);
            inputs.push(input.to_device(device));
            targets.push(target.to_device(device));
        }
        let (h, w, c) = (split.height as i64, split.width as i64, split.channels() as i64);
        let empty = |channels| Tensor::zeros([0, channels, h, w], (Kind::Uint8, device));
        let join =
            |parts: Vec<Tensor>, channels| if parts.is_empty() { empty(channels) } else { Tensor::cat(&parts, 0) };
        Self { inputs: join(inputs, c), targets: join(targets, 1) }
    }

    /// What [`Split::batch`] gives for `indices`, gathered on the device the split lives on.
    pub fn batch(&self, indices: &[usize]) -> (Tensor, Tensor) {
        let device = self.inputs.device();
        let index: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        // Non-blocking: a blocking copy to the GPU waits for every kernel queued before it,
        // which would stall the step on the host once per batch.
        let index = Tensor::from_slice(&index).to_device_(device, Kind::Int64, true, false);
        (as_input(&self.inputs.index_select(0, &index)), self.targets.index_select(0, &index).to_kind(Kind::Float))
    }
}

/// A data set ready to train on.
#[derive(Debug)]
pub struct LoadedData {
    pub train: Split,
    /// The held-out part, evaluated after every epoch.
    pub validation: Split,
    /// What the final test metrics are computed on (the held-out part unless configured otherwise).
    pub test: Split,
    /// How the split was made, recorded with the results ("by source image, 16/4 images, seed 0").
    pub split_description: String,
}

/// Resolves `root` against the data directory when relative.
pub fn resolve_root(root: &str, data_dir: Option<&Path>) -> PathBuf {
    let path = Path::new(root);
    match data_dir {
        Some(dir) if path.is_relative() => dir.join(path),
        _ => path.to_path_buf(),
    }
}

/// Loads (no cache; see [`cache::load`]) the data set of `config`.
pub fn load_uncached(config: &DatasetConfig, data_dir: Option<&Path>) -> Result<LoadedData, DataError> {
    let root = config.root.as_deref().map(|r| resolve_root(r, data_dir));
    let (h, w) = (config.size.0 as usize, config.size.1 as usize);
    match (config.kind, root) {
        (DatasetKind::Synthetic, _) => {
            let synthetic = config.synthetic.expect("a synthetic config carries its generator settings");
            let images = synthetic::generate(&synthetic, h, w);
            split::whole_images(images, config, h, w)
        }
        (DatasetKind::Isic2018, Some(root)) => {
            split::whole_images(isic::load(&root, h, w, config.limit)?, config, h, w)
        }
        (DatasetKind::Dsb2018, Some(root)) => split::whole_images(dsb::load(&root, h, w, config.limit)?, config, h, w),
        (DatasetKind::Drive, Some(root)) => {
            let patches = config.drive.expect("a drive config carries its patch settings");
            let training = drive::load(&root, drive::Subset::Training, config.limit)?;
            let official_test = match patches.test {
                TestSet::Official => Some(drive::load(&root, drive::Subset::Test, config.limit)?),
                TestSet::Heldout => None,
            };
            split::drive_patches(training, official_test, config, &patches)
        }
        (kind, None) => Err(DataError::TooSmall(format!("dataset.root is required for {}", kind.name()))),
    }
}

#[cfg(test)]
mod tests;

/// The data directory: `--data-dir`, else `ALLSWEEP_DATA`, else `../shared/data` when it exists
/// (the project's real data beside a checkout).
pub fn data_dir(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| std::env::var_os("ALLSWEEP_DATA").map(PathBuf::from)).or_else(|| {
        let beside = PathBuf::from("../shared/data");
        beside.is_dir().then_some(beside)
    })
}

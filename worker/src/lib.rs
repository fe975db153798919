//! allsweep's worker library: everything that touches libtorch.
//!
//! The training core lives here: the paper's losses ([`losses`]), the segmentation metrics
//! ([`metrics`]), the networks ([`models`]), the data sets ([`data`]) and the trainer ([`train`]). The `allsweep-worker` binary wraps it with the
//! `inspect` commands so anyone can check the core without reading code.

pub mod agent;
pub mod data;
pub mod device;
pub mod gpu;
pub mod inputs;
pub mod losses;
pub mod metrics;
pub mod models;
pub mod npy;
pub mod train;

pub use allsweep_config as config;

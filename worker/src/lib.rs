//! allsweep's worker library: everything that touches libtorch.
//!
//! The training core lives here: the paper's losses ([`losses`]), the segmentation metrics
//! ([`metrics`]) and the networks ([`models`]). The `allsweep-worker` binary wraps it with the
//! `inspect` commands so anyone can check the core without reading code.

pub mod inputs;
pub mod losses;
pub mod metrics;
pub mod models;
pub mod npy;
pub mod params;

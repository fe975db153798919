//! The configuration of one trial (a `RUN.toml`, or one point of a sweep's grid): which data
//! set, model, training schedule and loss, parsed from TOML and validated key by key.
//!
//! It is its own crate, free of libtorch, because both sides need it: the coordinator
//! validates and expands specs, the worker trains from the resolved configs.

pub mod dataset;
pub mod lines;
pub mod loss;
pub mod memory;
pub mod model;
pub mod params;
pub mod protocol;
pub mod train;
pub mod trial;

pub use dataset::DatasetConfig;
pub use loss::{AdaptiveLog, LossConfig, Reduction};
pub use memory::MemoryEstimate;
pub use model::{Arch, ModelConfig};
pub use params::ParamError;
pub use protocol::Protocol;
pub use train::{LrSchedule, Plateau, Precision, Selection, TrainConfig};
pub use trial::TrialConfig;

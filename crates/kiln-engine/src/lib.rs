//! The compute engine: every burn and libtorch call in kiln lives in this crate, so the
//! backend is chosen in one place (DESIGN §3). Layout follows burn's guide: `model` (the zoo),
//! `data` (offline datasets), `task` + `train` (the loop), `layers` (per-layer statistics
//! while training), `checkpoint`, `eval`, `weights` (import/export), `loaded` (a registry
//! version ready to run), `device`, and `ops` (layers on libtorch's own forward and backward
//! kernels).

pub mod checkpoint;
pub mod compress;
pub mod data;
pub mod device;
pub mod eval;
pub mod layers;
pub mod loaded;
pub mod model;
pub mod ops;
pub mod task;
pub mod train;
pub mod weights;

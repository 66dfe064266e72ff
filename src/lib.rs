//! kiln's shared library: everything both binaries need and nothing that links libtorch.
//!
//! The `kiln` console/CLI and the `kilnd` daemon both use this crate; only `kilnd`'s own
//! module tree (`src/bin/kilnd/`) references burn (DESIGN §1).

pub mod cli;
pub mod client;
pub mod deploy;
pub mod fsx;
pub mod home;
pub mod jobs;
pub mod names;
pub mod registry;
pub mod telemetry;
pub mod tui;

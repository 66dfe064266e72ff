//! kiln's UI-free core, shared by the console, the CLI and the daemon; links no libtorch.
//!
//! It owns what every process agrees on: names and digests, crash-safe files, the registry,
//! job folders, the deployment journal, telemetry samples, the control-API contract
//! ([`api`]) and the one client that speaks it ([`client`]).

pub mod api;
pub mod card;
pub mod client;
pub mod compression;
pub mod context;
pub mod deploy;
pub mod fsx;
pub mod home;
pub mod inspect;
pub mod jobs;
pub mod kinds;
pub mod layers;
pub mod names;
pub mod provenance;
pub mod registry;
pub mod settings;
pub mod signing;
pub mod study;
pub mod telemetry;

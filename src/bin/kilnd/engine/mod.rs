//! The compute engine: every burn and libtorch call in kiln lives under this module, so the
//! backend is chosen in one place (DESIGN §3). Layout follows burn's guide: `model` (the zoo),
//! `weights` (import/export), `device` (what libtorch reports).

pub mod device;
pub mod loaded;
pub mod model;
pub mod weights;

//! Per-screen state: what each screen shows and which row is selected. No rendering and no
//! I/O here; `App::update` calls these one-line methods, and answers feed them.

pub mod contexts;
pub mod epochs;
pub mod gpu;
pub mod inspect;
pub mod jobs;
pub mod layers;
pub mod models;
pub mod serving;
pub mod studies;

//! One module per screen; each has `render(frame, area, &App)` and draws only from state.

pub mod chart;
pub mod compression;
pub mod contexts;
pub mod detail;
pub mod eval;
pub mod gpu;
pub mod jobs;
pub mod layers;
pub mod models;
pub mod parallel;
pub mod sample;
pub mod samples;
pub mod serving;
pub mod studies;

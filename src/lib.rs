//! kiln's console and CLI: a thin client of kilnd's control API that links no libtorch
//! (`cargo tree -p kiln` shows no burn, tch or torch-sys; DESIGN §1).

pub mod cli;
#[cfg(test)]
mod fake_daemon;
pub mod tui;

//! Where kiln keeps its state: `$KILN_HOME`, else the platform data folder.

use std::path::PathBuf;

/// The config folder: `$KILN_CONFIG_DIR` when set, else e.g. `~/.config/kiln` on Linux
/// (`config.toml`, themes, keys and the trust store).
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("KILN_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    directories::ProjectDirs::from("", "", "kiln").map(|d| d.config_dir().to_path_buf())
}

/// The state folder: `$KILN_HOME` when set, else e.g. `~/.local/share/kiln` on Linux.
pub fn kiln_home() -> Result<PathBuf, HomeError> {
    if let Some(home) = std::env::var_os("KILN_HOME").filter(|h| !h.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    directories::ProjectDirs::from("", "", "kiln")
        .map(|dirs| dirs.data_dir().to_path_buf())
        .ok_or(HomeError::NoHome)
}

/// The state folder could not be determined.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("cannot find a home folder for kiln's data; set KILN_HOME to a writable folder")]
    NoHome,
}

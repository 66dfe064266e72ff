//! The `[signing]` and `[training]` tables of `config.toml` (the config folder,
//! [`crate::home::config_dir`]), read by kilnd and its workers:
//!
//! ```toml
//! [signing]
//! key = "alice"          # sign every version registered here, and its provenance
//! require_signed = true  # deploy and restore only versions signed by a trusted key
//!
//! [training]
//! keep_epoch_checkpoints = 10  # the last 10 training jobs keep every epoch's checkpoint
//! ```
//!
//! The console's own settings (theme, keymap) live in the same file; each reader takes its
//! tables and leaves the others alone.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::names::Name;
use crate::signing::{KeyStore, PrivateKey, SigningError};

/// `[signing]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// The key (`kiln keys gen --name NAME`) that signs each version at registration.
    #[serde(default)]
    pub key: Option<Name>,
    /// Refuse to deploy or restore anything not signed by a trusted key with intact files.
    #[serde(default)]
    pub require_signed: bool,
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// How many of the newest training jobs keep a checkpoint of every epoch, so any point of
    /// their validation curve can be registered as a version (0: none; the final epoch is
    /// always registered when a job finishes).
    #[serde(default = "default_keep_epoch_checkpoints")]
    pub keep_epoch_checkpoints: usize,
}

/// Training jobs that keep every epoch's checkpoint, unless `[training]` says otherwise.
pub const KEEP_EPOCH_CHECKPOINTS: usize = 10;

fn default_keep_epoch_checkpoints() -> usize {
    KEEP_EPOCH_CHECKPOINTS
}

impl Default for Training {
    fn default() -> Self {
        Self {
            keep_epoch_checkpoints: KEEP_EPOCH_CHECKPOINTS,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    signing: Signing,
    #[serde(default)]
    training: Training,
}

/// kilnd's settings and where they come from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub signing: Signing,
    pub training: Training,
    /// The config folder (keys, trust store); `None` when no home folder can be found.
    pub config_dir: Option<PathBuf>,
}

impl Settings {
    /// Reads `config.toml` from the config folder; a missing file is the defaults, a broken
    /// one an error naming it.
    pub fn load() -> Result<Self, String> {
        let config_dir = crate::home::config_dir();
        let file = match &config_dir {
            Some(dir) => read(&dir.join("config.toml"))?,
            None => File::default(),
        };
        Ok(Self {
            signing: file.signing,
            training: file.training,
            config_dir,
        })
    }

    /// The key store under the config folder.
    pub fn key_store(&self) -> KeyStore {
        KeyStore::new(self.config_dir.as_deref().unwrap_or(Path::new(".")))
    }

    /// The configured signing key, read (`None` when none is set).
    pub fn signer(&self) -> Result<Option<(Name, PrivateKey)>, SigningError> {
        match &self.signing.key {
            Some(name) => Ok(Some((name.clone(), self.key_store().private(name)?))),
            None => Ok(None),
        }
    }
}

fn read(path: &Path) -> Result<File, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str::<File>(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_table_is_read_and_other_tables_are_left_alone() {
        let dir = tempfile::tempdir().expect("ok");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "theme = \"light\"\n[signing]\nkey = \"alice\"\nrequire_signed = true\n",
        )
        .expect("ok");
        let file = read(&path).expect("ok");
        assert_eq!(file.signing.key.as_ref().map(Name::as_str), Some("alice"));
        assert!(file.signing.require_signed);
        assert_eq!(file.training.keep_epoch_checkpoints, KEEP_EPOCH_CHECKPOINTS);
        std::fs::write(&path, "[signing]\nrequire_signd = true\n").expect("ok");
        assert!(read(&path).expect_err("refused").contains("require_signd"));
        assert_eq!(
            read(&dir.path().join("none.toml")).expect("ok").signing,
            Signing::default()
        );
        std::fs::write(&path, "[training]\nkeep_epoch_checkpoints = 0\n").expect("ok");
        assert_eq!(read(&path).expect("ok").training.keep_epoch_checkpoints, 0);
    }
}

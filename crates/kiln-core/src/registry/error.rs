//! Registry errors, each naming the problem and what to do about it.

use std::path::PathBuf;

use crate::names::{Digest, Name, NameError};

/// Everything that can go wrong reading or writing the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error("unknown model '{0}': `kiln models ls` lists the registered models")]
    UnknownModel(Name),
    #[error("model '{model}' has no version {version} (versions: {known}); `kiln models show {model}` lists them")]
    UnknownVersion { model: Name, version: u32, known: String },
    #[error(
        "model '{model}' has no alias '{alias}' (aliases: {known}); set one with `kiln models alias {model}@<version> {alias}`"
    )]
    UnknownAlias { model: Name, alias: Name, known: String },
    #[error("model '{0}' has no versions yet; train or import one first")]
    NoVersions(Name),
    #[error("corrupt registry entry {}: {reason}; restore the file from a backup or delete it (the rest of the registry keeps working)", path.display())]
    Corrupt { path: PathBuf, reason: String },
    #[error("blob {digest} is missing ({}); the version that needs it cannot be loaded — re-import or retrain it", path.display())]
    MissingBlob { digest: Digest, path: PathBuf },
    #[error("blob {digest} is corrupt: its content hashes to {actual} ({}); restore it from a backup or re-import the version", path.display())]
    BlobMismatch {
        digest: Digest,
        actual: Digest,
        path: PathBuf,
    },
    #[error("refusing to remove {model}@{version}: alias {aliases} points at it; move the alias first or pass --force")]
    AliasInUse { model: Name, version: u32, aliases: String },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RegistryError {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }

    /// Whether the error means the thing asked for does not exist (CLI exit code 3).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            Self::UnknownModel(_) | Self::UnknownVersion { .. } | Self::UnknownAlias { .. } | Self::NoVersions(_)
        )
    }

    /// Whether the error is damaged data on disk (CLI exit code 4).
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Self::Corrupt { .. } | Self::MissingBlob { .. } | Self::BlobMismatch { .. }
        )
    }
}

/// Shorthand used across the registry.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

//! A version's signature: an OpenSSF model-signing bundle over the version's files (its
//! blobs under their file names, [`file_name_of`](super::file_name_of)), stored beside the
//! immutable version as `models/<model>/signatures/<n>.sig` — byte for byte the `model.sig`
//! that `kiln models export` writes and `model_signing verify key` checks.
//!
//! Checking one ([`check`]) re-hashes the blobs: a flipped byte shows as the file it is in.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Registry, RegistryError, Result, VersionManifest, WriteLock};
use crate::fsx;
use crate::names::Name;
use crate::signing::folder::default_ignore_paths;
use crate::signing::statement::Serialization;
use crate::signing::{Bundle, FileDigest, Manifest, PublicKey, SIGNATURE_FILE, SigningError, verify_bundle};

/// Where a version stands, as `kiln models verify` and the console's badge say it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum SignatureStatus {
    /// No signature.
    Unsigned,
    /// Signed by a trusted key, and every file matches.
    Signed { signer: Name, key_hint: String },
    /// Signed, but by no key in the trust store.
    Untrusted { key_hint: String, reason: String },
    /// The signature verifies, but files changed since: each named.
    Tampered {
        signer: Name,
        changed: Vec<String>,
        missing: Vec<String>,
        extra: Vec<String>,
    },
    /// The signature file is damaged or does not verify.
    Invalid { reason: String },
}

impl SignatureStatus {
    /// Signed by a trusted key with every file intact.
    pub fn is_verified(&self) -> bool {
        matches!(self, Self::Signed { .. })
    }

    /// The signer, when the signature verified with a trusted key (intact or not).
    pub fn signer(&self) -> Option<&Name> {
        match self {
            Self::Signed { signer, .. } | Self::Tampered { signer, .. } => Some(signer),
            _ => None,
        }
    }

    /// The console's badge: `✓ signed by NAME`, `unsigned`, `✗ tampered`, …
    pub fn badge(&self) -> String {
        match self {
            Self::Unsigned => "unsigned".into(),
            Self::Signed { signer, .. } => format!("✓ signed by {signer}"),
            Self::Untrusted { .. } => "✗ untrusted signer".into(),
            Self::Tampered { .. } => "✗ tampered".into(),
            Self::Invalid { .. } => "✗ bad signature".into(),
        }
    }

    /// One sentence with the reason and, where there is one, the fix.
    pub fn describe(&self) -> String {
        match self {
            Self::Unsigned => "unsigned: sign it with `kiln models sign`".into(),
            Self::Signed { signer, key_hint } => {
                format!("signed by {signer} (key {}), every file matches", short(key_hint))
            }
            Self::Untrusted { reason, .. } => reason.clone(),
            Self::Tampered {
                signer,
                changed,
                missing,
                extra,
            } => {
                let mut parts = Vec::new();
                if !changed.is_empty() {
                    parts.push(format!("changed since it was signed: {}", changed.join(", ")));
                }
                if !missing.is_empty() {
                    parts.push(format!("missing: {}", missing.join(", ")));
                }
                if !extra.is_empty() {
                    parts.push(format!("not signed: {}", extra.join(", ")));
                }
                format!("tampered: {} (signed by {signer})", parts.join("; "))
            }
            Self::Invalid { reason } => format!("bad signature: {reason}"),
        }
    }
}

fn short(hint: &str) -> &str {
    &hint[..hint.len().min(12)]
}

/// `m@v` and its status, as `GET /api/v1/signatures` lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionSignature {
    pub model: Name,
    pub version: u32,
    pub status: SignatureStatus,
}

/// The model-signing manifest of a version: its files under their export names, digests as
/// the registry records them, hashed as `model_signing sign key` would hash the exported
/// folder (`files`, sha256, `model.sig` and the git paths ignored).
pub fn signing_manifest(version: &VersionManifest) -> Result<Manifest> {
    let files = version
        .files()
        .into_iter()
        .map(|(name, digest)| FileDigest {
            name,
            sha256: digest.sha256(),
        })
        .collect();
    Manifest::new(
        format!("{}-{}", version.model, version.version),
        Serialization::files(default_ignore_paths(Some(SIGNATURE_FILE))),
        files,
    )
    .map_err(|e| RegistryError::Corrupt {
        path: PathBuf::from(format!("{}@{}", version.model, version.version)),
        reason: e.to_string(),
    })
}

/// Hashes a blob file; the daemon passes one that remembers digests by size and mtime.
pub type HashFile<'a> = &'a dyn Fn(&Path) -> std::io::Result<[u8; 32]>;

/// Checks `bundle` as the signature of `version`: a trusted key, a valid signature, and the
/// files as they are now (re-hashed from the blob store with `hash`).
pub fn check_bundle(
    registry: &Registry,
    version: &VersionManifest,
    bundle: &Bundle,
    trusted: &[(Name, PublicKey)],
    trust_store: &Path,
    hash: HashFile<'_>,
) -> SignatureStatus {
    let (signer, key, signed) = match verify_with_trusted(bundle, trusted, trust_store) {
        Ok(found) => found,
        Err(status) => return status,
    };
    let mut now = Vec::new();
    for (name, digest) in version.files() {
        if let Ok(sha256) = hash(&registry.blobs().path(digest)) {
            now.push(FileDigest { name, sha256 });
        }
    }
    let actual = match Manifest::new(signed.model_name.clone(), signed.serialization.clone(), now) {
        Ok(m) => m,
        Err(e) => return SignatureStatus::Invalid { reason: e.to_string() },
    };
    let report = signed.diff(&actual);
    if report.is_empty() {
        SignatureStatus::Signed {
            signer,
            key_hint: key.hint(),
        }
    } else {
        SignatureStatus::Tampered {
            signer,
            changed: report.changed.into_iter().map(|c| c.name).collect(),
            missing: report.missing,
            extra: report.extra,
        }
    }
}

/// Finds the trusted key that signed `bundle` and verifies it: `(signer, key, manifest)`, or
/// the status that says why not.
pub fn verify_with_trusted(
    bundle: &Bundle,
    trusted: &[(Name, PublicKey)],
    trust_store: &Path,
) -> std::result::Result<(Name, PublicKey, Manifest), SignatureStatus> {
    let hint = bundle.key_hint.clone().unwrap_or_default();
    let candidates: Vec<&(Name, PublicKey)> = trusted
        .iter()
        .filter(|(_, key)| hint.is_empty() || key.hint().eq_ignore_ascii_case(&hint))
        .collect();
    if candidates.is_empty() {
        let reason = if trusted.is_empty() {
            format!(
                "signed by key {}, but there is no trust store ({} holds no keys): trust the signer's public key with `kiln keys trust key.pub`",
                short(&hint),
                trust_store.display()
            )
        } else {
            format!(
                "signed by an unknown key {} (not in {}): if you know whose it is, trust it with `kiln keys trust key.pub --name NAME`",
                short(&hint),
                trust_store.display()
            )
        };
        return Err(SignatureStatus::Untrusted { key_hint: hint, reason });
    }
    let mut last = None;
    for (name, key) in candidates {
        match verify_bundle(bundle, key) {
            Ok(manifest) => return Ok((name.clone(), key.clone(), manifest)),
            Err(e) => last = Some(e),
        }
    }
    Err(SignatureStatus::Invalid {
        reason: last.map(|e| e.to_string()).unwrap_or_default(),
    })
}

impl Registry {
    /// `models/<model>/signatures/<version>.sig`.
    pub fn signature_path(&self, model: &Name, version: u32) -> PathBuf {
        self.model_dir(model).join("signatures").join(format!("{version}.sig"))
    }

    /// The stored signature of `model@version`: `Ok(None)` when unsigned, `Err` (as a status
    /// reason) when the file cannot be read as a bundle.
    pub fn signature(&self, model: &Name, version: u32) -> std::result::Result<Option<Bundle>, SigningError> {
        let path = self.signature_path(model, version);
        match Bundle::read(&path) {
            Ok(bundle) => Ok(Some(bundle)),
            Err(SigningError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores `bundle` as the signature of `model@version` (replacing an earlier one).
    pub fn write_signature(&self, _lock: &WriteLock, model: &Name, version: u32, bundle: &Bundle) -> Result<()> {
        self.version(model, version)?;
        let path = self.signature_path(model, version);
        if let Some(dir) = path.parent() {
            fsx::create_dir_durably(dir).map_err(RegistryError::io("create", dir))?;
        }
        let mut text = bundle.to_json();
        text.push('\n');
        fsx::write_atomic(&path, text.as_bytes()).map_err(RegistryError::io("write", &path))
    }

    /// The status of `model@version`'s signature against `trusted`.
    pub fn check_signature(
        &self,
        version: &VersionManifest,
        trusted: &[(Name, PublicKey)],
        trust_store: &Path,
        hash: HashFile<'_>,
    ) -> SignatureStatus {
        match self.signature(&version.model, version.version) {
            Ok(None) => SignatureStatus::Unsigned,
            Ok(Some(bundle)) => check_bundle(self, version, &bundle, trusted, trust_store, hash),
            Err(e) => SignatureStatus::Invalid {
                reason: format!(
                    "{}: {e}",
                    self.signature_path(&version.model, version.version).display()
                ),
            },
        }
    }
}

/// Hashes a file with no cache.
pub fn hash_plain(path: &Path) -> std::io::Result<[u8; 32]> {
    super::hash_file(path).map(|d| d.sha256())
}

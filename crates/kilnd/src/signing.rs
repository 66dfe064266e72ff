//! The daemon's side of model signing: checking versions against the trust store (re-hashing
//! blobs, with digests remembered by size and mtime so the console's badges stay cheap), and
//! the strict mode (`require_signed`) that deploy and restore obey.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use kiln_core::names::Name;
use kiln_core::registry::{Registry, SignatureStatus, VersionManifest};
use kiln_core::settings::Settings;
use kiln_core::signing::PublicKey;

/// Blob path → (size, mtime, sha256): a digest is trusted while the file's size and mtime stay.
type Hashes = HashMap<PathBuf, (u64, SystemTime, [u8; 32])>;

/// Checks signatures; shared by the control API and the inference server.
#[derive(Debug)]
pub struct Verifier {
    /// Deploy and restore only versions signed by a trusted key with intact files.
    pub require_signed: bool,
    hashes: Mutex<Hashes>,
}

impl Verifier {
    pub fn new(require_signed: bool) -> Self {
        Self {
            require_signed,
            hashes: Mutex::new(HashMap::new()),
        }
    }

    /// A blob's sha256, re-read only when its size or mtime changed since the last time.
    pub fn hash(&self, path: &Path) -> std::io::Result<[u8; 32]> {
        let meta = std::fs::metadata(path)?;
        let (len, modified) = (meta.len(), meta.modified()?);
        if let Some(&(l, m, sha)) = self.lock().get(path)
            && l == len
            && m == modified
        {
            return Ok(sha);
        }
        let sha = kiln_core::registry::hash_file(path)?.sha256();
        self.lock().insert(path.to_owned(), (len, modified, sha));
        Ok(sha)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hashes> {
        self.hashes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The status of `version` against the trust store as it is now.
    pub fn status(&self, registry: &Registry, version: &VersionManifest) -> SignatureStatus {
        self.status_with(registry, version, &trusted())
    }

    /// [`Self::status`] against a trust store already read (one read for a whole listing).
    pub fn status_with(&self, registry: &Registry, version: &VersionManifest, trust: &Trust) -> SignatureStatus {
        match trust {
            Ok((keys, dir)) => registry.check_signature(version, keys, dir, &|p| self.hash(p)),
            Err(reason) => SignatureStatus::Untrusted {
                key_hint: String::new(),
                reason: reason.clone(),
            },
        }
    }

    /// In strict mode, refuses `version` unless it is signed by a trusted key with intact
    /// files; returns the signer when it is signed (strict or not), for the journal.
    pub fn gate(&self, registry: &Registry, version: &VersionManifest) -> Result<Option<Name>, String> {
        let status = self.status(registry, version);
        if self.require_signed && !status.is_verified() {
            return Err(format!(
                "{}@{} is refused: this daemon serves only versions signed by a trusted key (require_signed), and it is {}",
                version.model,
                version.version,
                status.describe()
            ));
        }
        Ok(status.is_verified().then(|| status.signer().cloned()).flatten())
    }
}

/// The trusted keys and the trust store's folder, or why they cannot be read.
pub type Trust = Result<(Vec<(Name, PublicKey)>, PathBuf), String>;

/// The trusted keys and the trust store's folder, from the config folder.
pub fn trusted() -> Trust {
    let settings = Settings::load()?;
    let store = settings.key_store();
    let keys = store
        .trusted()
        .map_err(|e| format!("cannot read the trust store {}: {e}", store.trust_dir().display()))?;
    Ok((keys, store.trust_dir().to_owned()))
}

/// The key `[signing] key` names in config.toml, read; `None` when none is set.
pub fn configured_signer() -> anyhow::Result<Option<(Name, kiln_core::signing::PrivateKey)>> {
    let settings = Settings::load().map_err(|e| anyhow::anyhow!("{e}"))?;
    settings.signer().map_err(|e| {
        anyhow::anyhow!(
            "the signing key config.toml names ([signing] key = \"{}\") cannot be used: {e}",
            settings.signing.key.as_ref().map(Name::as_str).unwrap_or_default()
        )
    })
}

/// The job behind a version, for its provenance: its spec as submitted, when its worker
/// started, and now as the end.
pub fn build_of(job: &kiln_core::jobs::JobDir, started_at: Option<String>) -> kiln_core::provenance::Build {
    let spec = job
        .spec()
        .ok()
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or_default();
    kiln_core::provenance::Build {
        job_id: job.id.to_string(),
        spec,
        started_at,
        finished_at: kiln_core::registry::now_rfc3339(),
    }
}

/// Registration's signer: the configured key, or (reported in the job's log) none when it
/// cannot be read — the trained weights are never lost over a signature.
pub fn signer_for_registration() -> Option<(Name, kiln_core::signing::PrivateKey)> {
    configured_signer().unwrap_or_else(|e| {
        eprintln!("warning: registering unsigned: {e:#}");
        None
    })
}

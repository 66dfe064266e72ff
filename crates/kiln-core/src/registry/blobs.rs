//! Content-addressed, immutable artifacts under `registry/blobs/sha256/<2 hex>/<64 hex>`.
//!
//! A blob's path is derived from its validated digest only; content is re-hashed on every
//! read, so a flipped byte is caught before it can be loaded.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::error::{RegistryError, Result};
use crate::fsx;
use crate::names::Digest;

/// The blob folder of one registry.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

/// One blob whose content does not match its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobProblem {
    pub path: PathBuf,
    pub reason: String,
}

impl BlobStore {
    pub(crate) fn new(registry_root: &Path) -> Self {
        Self {
            root: registry_root.join("blobs").join("sha256"),
        }
    }

    /// Where the blob with `digest` lives (whether or not it exists).
    pub fn path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.root.join(&hex[..2]).join(hex)
    }

    /// Whether the blob is present (not verified).
    pub fn contains(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    /// Stores `bytes`, returning their digest. Storing the same content twice is a no-op.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = sha256(bytes);
        if self.contains(&digest) {
            return Ok(digest);
        }
        self.put_reader(&mut &bytes[..])
    }

    /// Copies a file into the store.
    pub fn put_file(&self, src: &Path) -> Result<Digest> {
        let mut file = File::open(src).map_err(RegistryError::io("open", src))?;
        self.put_reader(&mut file)
    }

    fn put_reader(&self, reader: &mut dyn Read) -> Result<Digest> {
        let incoming = self.root.join("incoming");
        fsx::create_dir_durably(&incoming).map_err(RegistryError::io("create", &incoming))?;
        sweep_stale(&incoming);
        let tmp = fsx::temp_path_for(&incoming.join("blob"));
        let digest = write_hashed(reader, &tmp).inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })?;
        let dest = self.path(&digest);
        if dest.is_file() {
            let _ = fs::remove_file(&tmp);
            return Ok(digest);
        }
        let dir = dest.parent().unwrap_or(&self.root);
        fsx::create_dir_durably(dir).map_err(RegistryError::io("create", dir))?;
        fsx::publish(&tmp, &dest).map_err(RegistryError::io("store blob", &dest))?;
        Ok(digest)
    }

    /// Reads a blob whole, verifying its content against its digest.
    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let path = self.path(digest);
        let bytes = fs::read(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => RegistryError::MissingBlob {
                digest: digest.clone(),
                path: path.clone(),
            },
            _ => RegistryError::io("read", &path)(e),
        })?;
        let actual = sha256(&bytes);
        if &actual != digest {
            return Err(RegistryError::BlobMismatch {
                digest: digest.clone(),
                actual,
                path,
            });
        }
        Ok(bytes)
    }

    /// Re-hashes every stored blob; returns the ones whose content does not match their name.
    pub fn verify_all(&self) -> Result<(usize, Vec<BlobProblem>)> {
        let mut checked = 0;
        let mut problems = Vec::new();
        let Ok(shards) = fs::read_dir(&self.root) else {
            return Ok((0, problems));
        };
        for shard in shards.flatten().filter(|e| e.file_name() != "incoming") {
            let Ok(entries) = fs::read_dir(shard.path()) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if fsx::is_temp(&name) {
                    continue;
                }
                checked += 1;
                if let Some(reason) = self.check_one(&name, &path) {
                    problems.push(BlobProblem { path, reason });
                }
            }
        }
        Ok((checked, problems))
    }

    fn check_one(&self, name: &str, path: &Path) -> Option<String> {
        let Ok(expected) = Digest::new(&format!("sha256:{name}")) else {
            return Some("file name is not a sha256 digest".into());
        };
        match hash_file(path) {
            Ok(actual) if actual == expected => None,
            Ok(actual) => Some(format!("content hashes to {actual}")),
            Err(e) => Some(format!("unreadable: {e}")),
        }
    }
}

/// Removes partial blobs a killed writer left in `incoming/` more than an hour ago. Blob
/// writes take no lock, so younger ones may still be in progress.
fn sweep_stale(incoming: &Path) {
    let hour = std::time::Duration::from_secs(3600);
    for entry in fs::read_dir(incoming).into_iter().flatten().flatten() {
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if age.is_some_and(|age| age > hour) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn write_hashed(reader: &mut dyn Read, tmp: &Path) -> Result<Digest> {
    let io_err = RegistryError::io("write", tmp);
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .map_err(RegistryError::io("create", tmp))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(RegistryError::io("read", tmp)(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(RegistryError::io("write", tmp))?;
    }
    out.sync_all().map_err(io_err)?;
    Ok(Digest::from_sha256(&hasher.finalize().into()))
}

/// SHA-256 of a byte slice as a [`Digest`].
pub fn sha256(bytes: &[u8]) -> Digest {
    Digest::from_sha256(&Sha256::digest(bytes).into())
}

/// SHA-256 of a file's content, streamed.
pub fn hash_file(path: &Path) -> io::Result<Digest> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(Digest::from_sha256(&hasher.finalize().into()))
}

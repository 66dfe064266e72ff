//! The operator's keys and trust store, in the config folder (never in `$KILN_HOME`):
//!
//! ```text
//! <config>/keys/<name>.pem      own private key, PKCS#8 PEM, mode 0600
//! <config>/keys/<name>.pub      its public key, SPKI PEM
//! <config>/trusted/<name>.pub   public keys whose signatures are accepted (own keys included)
//! ```
//!
//! Listing shows names, curves and key hints only: a private key never leaves its file.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::error::SigningError;
use super::keys::{PrivateKey, PublicKey};
use crate::names::Name;

/// One key as `kiln keys ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    pub name: Name,
    /// The curve, e.g. `P-256`.
    pub curve: String,
    /// Hex SHA-256 of the public key (what a signature's `publicKey.hint` carries).
    pub hint: String,
    /// This box holds the private key (it can sign).
    pub own: bool,
    /// Signatures by this key are accepted.
    pub trusted: bool,
}

/// The key folders under one config folder.
#[derive(Debug, Clone)]
pub struct KeyStore {
    keys: PathBuf,
    trusted: PathBuf,
}

impl KeyStore {
    /// The store under `config` (`~/.config/kiln`); nothing is created until a key is written.
    pub fn new(config: &Path) -> Self {
        Self {
            keys: config.join("keys"),
            trusted: config.join("trusted"),
        }
    }

    /// The trust store folder (`<config>/trusted`).
    pub fn trust_dir(&self) -> &Path {
        &self.trusted
    }

    fn private_path(&self, name: &Name) -> PathBuf {
        self.keys.join(format!("{name}.pem"))
    }

    fn public_path(&self, name: &Name) -> PathBuf {
        self.keys.join(format!("{name}.pub"))
    }

    fn trusted_path(&self, name: &Name) -> PathBuf {
        self.trusted.join(format!("{name}.pub"))
    }

    /// Generates a P-256 key named `name`, trusts its public key, and returns its entry.
    /// An existing key of that name is never overwritten.
    pub fn generate(&self, name: &Name) -> Result<KeyEntry, SigningError> {
        let private = self.private_path(name);
        if private.exists() || self.trusted_path(name).exists() {
            return Err(SigningError::Store(format!(
                "a key named {name} exists already ({}); choose another --name",
                private.display()
            )));
        }
        create_dir(&self.keys)?;
        create_dir(&self.trusted)?;
        let key = PrivateKey::generate();
        key.write(&private)?;
        key.public_key().write(&self.public_path(name))?;
        key.public_key().write(&self.trusted_path(name))?;
        self.entry(name)
    }

    /// Trusts the public key in `file` under `name`; refuses a private key, another key type,
    /// or a name already taken by a different key.
    pub fn trust(&self, file: &Path, name: &Name) -> Result<KeyEntry, SigningError> {
        let key = PublicKey::read(file)?;
        let target = self.trusted_path(name);
        if target.exists() {
            let known = PublicKey::read(&target)?;
            if known.hint() != key.hint() {
                return Err(SigningError::Store(format!(
                    "another key is trusted as {name} already; untrust it first, or pass another --name"
                )));
            }
        }
        create_dir(&self.trusted)?;
        key.write(&target)?;
        self.entry(name)
    }

    /// Stops trusting `name` (its private key, if this box holds one, stays).
    pub fn untrust(&self, name: &Name) -> Result<(), SigningError> {
        let path = self.trusted_path(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(SigningError::Store(format!(
                "no trusted key is named {name}; `kiln keys ls` lists them"
            ))),
            Err(e) => Err(SigningError::io("remove", &path)(e)),
        }
    }

    /// The private key `name`, to sign with.
    pub fn private(&self, name: &Name) -> Result<PrivateKey, SigningError> {
        let path = self.private_path(name);
        if !path.is_file() {
            return Err(SigningError::Store(format!(
                "no private key is named {name} in {}; create one with `kiln keys gen --name {name}`",
                self.keys.display()
            )));
        }
        PrivateKey::read(&path)
    }

    /// Every trusted public key, by name.
    pub fn trusted(&self) -> Result<Vec<(Name, PublicKey)>, SigningError> {
        names_in(&self.trusted, "pub")?
            .into_iter()
            .map(|name| Ok((name.clone(), PublicKey::read(&self.trusted_path(&name))?)))
            .collect()
    }

    /// Own and trusted keys, by name.
    pub fn list(&self) -> Result<Vec<KeyEntry>, SigningError> {
        let mut names = names_in(&self.keys, "pub")?;
        names.extend(names_in(&self.trusted, "pub")?);
        names.sort();
        names.dedup();
        names.iter().map(|name| self.entry(name)).collect()
    }

    fn entry(&self, name: &Name) -> Result<KeyEntry, SigningError> {
        let own = self.private_path(name).is_file();
        let trusted = self.trusted_path(name).is_file();
        let public = match own {
            true => self.public_path(name),
            false => self.trusted_path(name),
        };
        let key = PublicKey::read(&public)?;
        Ok(KeyEntry {
            name: name.clone(),
            curve: key.curve().to_string(),
            hint: key.hint(),
            own,
            trusted,
        })
    }
}

fn create_dir(dir: &Path) -> Result<(), SigningError> {
    fs::create_dir_all(dir).map_err(SigningError::io("create", dir))
}

/// The names of `<dir>/<name>.<ext>` files; files whose stem is not a valid name are skipped.
fn names_in(dir: &Path, ext: &str) -> Result<Vec<Name>, SigningError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SigningError::io("read", dir)(e)),
    };
    let mut names = Vec::new();
    for entry in entries {
        let path = entry.map_err(SigningError::io("read", dir))?.path();
        if path.extension().and_then(|e| e.to_str()) != Some(ext) {
            continue;
        }
        if let Some(name) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| Name::new(s).ok())
        {
            names.push(name);
        }
    }
    names.sort();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> Name {
        Name::new(text).expect("name")
    }

    #[test]
    fn generate_trust_list_and_untrust() {
        let dir = tempfile::tempdir().expect("temp");
        let store = KeyStore::new(dir.path());
        let mine = store.generate(&name("ops")).expect("generate");
        assert!(mine.own && mine.trusted && mine.curve == "P-256", "{mine:?}");
        assert!(store.generate(&name("ops")).is_err(), "a key is never overwritten");
        let other = KeyStore::new(&dir.path().join("elsewhere"));
        other.generate(&name("partner")).expect("generate");
        let file = dir.path().join("elsewhere/keys/partner.pub");
        let theirs = store.trust(&file, &name("partner")).expect("trust");
        assert!(!theirs.own && theirs.trusted);
        let names: Vec<String> = store.list().expect("list").iter().map(|k| k.name.to_string()).collect();
        assert_eq!(names, ["ops", "partner"]);
        let err = store
            .trust(&dir.path().join("keys/ops.pem"), &name("x"))
            .expect_err("a private key");
        assert!(!err.to_string().contains("PRIVATE KEY-----\nM"), "{err}");
        assert!(
            store.trust(&file, &name("ops")).is_err(),
            "the name is taken by another key"
        );
        store.untrust(&name("partner")).expect("untrust");
        assert_eq!(store.trusted().expect("trusted").len(), 1);
        assert!(store.untrust(&name("partner")).is_err());
        assert!(store.private(&name("partner")).is_err());
        store.private(&name("ops")).expect("own key reads back");
    }
}

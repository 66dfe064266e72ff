//! The local model registry under `$KILN_HOME/registry` (DESIGN §2).
//!
//! ```text
//! registry/
//!   .lock                              advisory write lock (one writer at a time)
//!   blobs/sha256/<2 hex>/<64 hex>      immutable artifacts, verified on read
//!   models/<model>/model.json          ModelRecord
//!   models/<model>/versions/<n>.json   VersionManifest, immutable
//!   models/<model>/aliases.json        {"production": 3}
//! ```
//!
//! Readers take no lock: every file appears whole through an atomic rename. Writers hold the
//! advisory lock for the whole read-modify-write, so version numbers never collide. A corrupt
//! entry is reported as a [`Problem`] and skipped; the rest of the registry keeps working.

mod blobs;
mod catalog;
mod error;
mod manifest;
mod read;
mod report;
pub mod signature;

use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

pub use blobs::{BlobProblem, BlobStore, hash_file, sha256};
pub use catalog::{Catalog, VersionRow};
pub use error::{RegistryError, Result};
pub use manifest::{
    Aliases, Architecture, CheckpointLink, DataFile, DatasetRef, EvalRecord, ModelRecord, VersionDraft, VersionLink,
    VersionManifest, file_name_of, now_rfc3339, role_of_file,
};
pub use read::{Listing, ModelDetail, ModelSummary, Problem};
pub use report::{ClassScore, EvalReport};
pub use signature::{SignatureStatus, VersionSignature, signing_manifest};

use crate::fsx;
use crate::names::Name;

/// A trained model on its way into the registry ([`Registry::register_trained`]).
#[derive(Debug)]
pub struct Trained<'a> {
    /// The manifest; its `weights`, `classes` and `vocab` blobs are filled in.
    pub draft: VersionDraft,
    /// safetensors bytes.
    pub weights: &'a [u8],
    pub classes: &'a [String],
    pub vocab: Option<&'a serde_json::Value>,
    /// Recorded when the model is new.
    pub task: &'a str,
    pub description: String,
    pub extras: Extras<'a>,
}

/// What a version gets at registration besides its manifest: every version gets its
/// architecture as `config.json` and a model card; a job's version gets its provenance; a
/// version is signed (provenance included) when a signing key is set.
#[derive(Debug, Default, Clone, Copy)]
pub struct Extras<'a> {
    /// The operator's card text (`--card`), the card's description.
    pub card: Option<&'a str>,
    /// The job that produced the version (SLSA provenance is recorded).
    pub build: Option<&'a crate::provenance::Build>,
    /// Signs the version and its provenance.
    pub signer: Option<&'a crate::signing::PrivateKey>,
    /// Store exactly the draft's blobs, adding no config or card (a signed folder's files).
    pub exact: bool,
}

/// Handle on one registry folder. Cheap to clone; holds no open files.
#[derive(Debug, Clone)]
pub struct Registry {
    root: PathBuf,
    blobs: BlobStore,
}

/// Proof that this process holds the registry's write lock; released on drop.
#[derive(Debug)]
pub struct WriteLock {
    file: File,
}

impl Drop for WriteLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

impl Registry {
    /// Opens (creating if needed) the registry under `home` (`$KILN_HOME`).
    pub fn open(home: &Path) -> Result<Self> {
        let root = home.join("registry");
        let models = root.join("models");
        fsx::create_dir_durably(&models).map_err(RegistryError::io("create", &models))?;
        Ok(Self {
            blobs: BlobStore::new(&root),
            root,
        })
    }

    /// The registry folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Waits for and takes the exclusive write lock.
    pub fn lock(&self) -> Result<WriteLock> {
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(RegistryError::io("open lock file", &path))?;
        file.lock().map_err(RegistryError::io("lock", &path))?;
        Ok(WriteLock { file })
    }

    fn model_dir(&self, model: &Name) -> PathBuf {
        self.root.join("models").join(model.as_str())
    }

    fn versions_dir(&self, model: &Name) -> PathBuf {
        self.model_dir(model).join("versions")
    }

    fn version_path(&self, model: &Name, version: u32) -> PathBuf {
        self.versions_dir(model).join(format!("{version}.json"))
    }

    fn aliases_path(&self, model: &Name) -> PathBuf {
        self.model_dir(model).join("aliases.json")
    }

    /// Creates the model record if the model does not exist yet; returns the stored record.
    ///
    /// The model folder is assembled under a temp name and renamed into place, so a crash
    /// never leaves a model folder without its `model.json`.
    pub fn ensure_model(&self, _lock: &WriteLock, record: ModelRecord) -> Result<ModelRecord> {
        let dir = self.model_dir(&record.name);
        if dir.join("model.json").is_file() {
            return self.model_record(&record.name);
        }
        let models = self.root.join("models");
        fsx::sweep_temp_files(&models);
        let staging = fsx::temp_path_for(&dir);
        let versions = staging.join("versions");
        fsx::create_dir_durably(&versions).map_err(RegistryError::io("create", &versions))?;
        write_json(&staging.join("model.json"), &record)?;
        fsx::publish(&staging, &dir).map_err(RegistryError::io("create model folder", &dir))?;
        Ok(record)
    }

    /// Registers a new immutable version, numbered one past the highest existing one, with
    /// its `config`, `card` and (for a job's version) `provenance` blobs, signed when
    /// `extras` carries a key. Every blob the draft names must already be stored.
    pub fn add_version(
        &self,
        lock: &WriteLock,
        model: &Name,
        draft: VersionDraft,
        extras: &Extras<'_>,
    ) -> Result<VersionManifest> {
        self.model_record(model)?;
        for digest in draft.blobs.values() {
            if !self.blobs.contains(digest) {
                let path = self.blobs.path(digest);
                return Err(RegistryError::MissingBlob {
                    digest: digest.clone(),
                    path,
                });
            }
        }
        let dir = self.versions_dir(model);
        fsx::sweep_temp_files(&dir);
        let next = self.version_numbers(model)?.last().map_or(1, |v| v + 1);
        // A number reused after its version was removed starts with nothing beside it.
        self.remove_attachments(model, next)?;
        let mut manifest = VersionManifest {
            model: model.clone(),
            version: next,
            created_at: now_rfc3339(),
            kiln_version: env!("CARGO_PKG_VERSION").to_owned(),
            draft,
        };
        self.attach_files(&mut manifest, extras)?;
        write_json(&self.version_path(model, next), &manifest)?;
        if let Some(key) = extras.signer {
            let bundle = crate::signing::sign_manifest(&signature::signing_manifest(&manifest)?, key).map_err(|e| {
                RegistryError::Corrupt {
                    path: self.signature_path(model, next),
                    reason: e.to_string(),
                }
            })?;
            self.write_signature(lock, model, next, &bundle)?;
        }
        Ok(manifest)
    }

    /// Stores the blobs every new version gets: `config` (the architecture), `provenance`
    /// (for a job's version) and `card` (last: it describes the rest).
    fn attach_files(&self, manifest: &mut VersionManifest, extras: &Extras<'_>) -> Result<()> {
        if extras.exact {
            return Ok(());
        }
        let encode = |what: &str, e: serde_json::Error| RegistryError::io("encode", Path::new(what))(e.into());
        if !manifest.draft.blobs.contains_key("config") {
            let mut bytes = serde_json::to_vec_pretty(&manifest.draft.architecture).map_err(|e| encode("config", e))?;
            bytes.push(b'\n');
            let digest = self.blobs.put_bytes(&bytes)?;
            manifest.draft.blobs.insert("config".into(), digest);
        }
        if let Some(build) = extras.build
            && !manifest.draft.blobs.contains_key("provenance")
        {
            let parent_weights = manifest
                .draft
                .parent
                .as_ref()
                .and_then(|p| self.version(&p.model, p.version).ok())
                .and_then(|p| p.draft.blobs.get("weights").cloned());
            let statement = crate::provenance::statement(manifest, build, parent_weights.as_ref());
            let digest = self
                .blobs
                .put_bytes(&crate::provenance::encode(&statement, extras.signer))?;
            manifest.draft.blobs.insert("provenance".into(), digest);
        }
        if !manifest.draft.blobs.contains_key("card") {
            let card = crate::card::render(manifest, extras.card);
            let digest = self.blobs.put_bytes(card.as_bytes())?;
            manifest.draft.blobs.insert("card".into(), digest);
        }
        Ok(())
    }

    /// Stores a trained model's weights, classes and vocabulary as blobs and registers them as
    /// the next version of `model` (created with the given task and description if new).
    pub fn register_trained(&self, model: &Name, trained: Trained<'_>) -> Result<VersionManifest> {
        let mut draft = trained.draft;
        draft
            .blobs
            .insert("weights".into(), self.blobs.put_bytes(trained.weights)?);
        if let Some(vocab) = trained.vocab {
            let bytes =
                serde_json::to_vec(vocab).map_err(|e| RegistryError::io("encode", Path::new("vocab"))(e.into()))?;
            draft.blobs.insert("vocab".into(), self.blobs.put_bytes(&bytes)?);
        }
        let classes = serde_json::to_vec(trained.classes)
            .map_err(|e| RegistryError::io("encode", Path::new("classes"))(e.into()))?;
        draft.blobs.insert("classes".into(), self.blobs.put_bytes(&classes)?);
        let lock = self.lock()?;
        let record = ModelRecord {
            name: model.clone(),
            task: trained.task.to_owned(),
            description: trained.description,
            created_at: now_rfc3339(),
            owner: None,
            license: None,
        };
        self.ensure_model(&lock, record)?;
        self.add_version(&lock, model, draft, &trained.extras)
    }

    /// Points `alias` at `version` (which must exist), replacing any earlier target.
    pub fn set_alias(&self, _lock: &WriteLock, model: &Name, alias: &Name, version: u32) -> Result<()> {
        self.version(model, version)?;
        let mut aliases = self.aliases(model)?;
        aliases.insert(alias.clone(), version);
        self.write_aliases(model, &aliases)
    }

    /// Removes an alias; removing one that does not exist is an error naming the known ones.
    pub fn remove_alias(&self, _lock: &WriteLock, model: &Name, alias: &Name) -> Result<u32> {
        let mut aliases = self.aliases(model)?;
        let Some(version) = aliases.remove(alias) else {
            return Err(RegistryError::UnknownAlias {
                model: model.clone(),
                alias: alias.clone(),
                known: join_or_none(aliases.keys()),
            });
        };
        self.write_aliases(model, &aliases)?;
        Ok(version)
    }

    /// Deletes a version's manifest. Refuses while an alias points at it unless `force`, in
    /// which case those aliases are removed first. Blobs stay (they may be shared).
    pub fn remove_version(&self, _lock: &WriteLock, model: &Name, version: u32, force: bool) -> Result<Vec<Name>> {
        self.version(model, version)?;
        let mut aliases = self.aliases(model)?;
        let pointing: Vec<Name> = aliases
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(a, _)| a.clone())
            .collect();
        if !pointing.is_empty() && !force {
            return Err(RegistryError::AliasInUse {
                model: model.clone(),
                version,
                aliases: join_or_none(pointing.iter()),
            });
        }
        if !pointing.is_empty() {
            aliases.retain(|_, v| *v != version);
            self.write_aliases(model, &aliases)?;
        }
        // The signature goes first: a crash in between leaves an unsigned version, never a
        // signature waiting for whichever version gets the number next.
        self.remove_attachments(model, version)?;
        let path = self.version_path(model, version);
        fsx::remove_durably(&path).map_err(RegistryError::io("remove", &path))?;
        Ok(pointing)
    }

    /// Removes what is stored beside version `version` (its signature and evaluations).
    fn remove_attachments(&self, model: &Name, version: u32) -> Result<()> {
        for path in [self.signature_path(model, version), self.evals_path(model, version)] {
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(RegistryError::io("remove", &path)(e)),
            }
        }
        Ok(())
    }

    /// Attaches an evaluation report (already stored as a blob) to a version.
    pub fn attach_eval(&self, _lock: &WriteLock, model: &Name, version: u32, record: EvalRecord) -> Result<()> {
        self.version(model, version)?;
        if !self.blobs.contains(&record.report) {
            let path = self.blobs.path(&record.report);
            return Err(RegistryError::MissingBlob {
                digest: record.report,
                path,
            });
        }
        let dir = self.model_dir(model).join("evals");
        fsx::create_dir_durably(&dir).map_err(RegistryError::io("create", &dir))?;
        fsx::sweep_temp_files(&dir);
        let mut records = self.evals(model, version)?;
        records.push(record);
        write_json(&self.evals_path(model, version), &records)
    }

    fn evals_path(&self, model: &Name, version: u32) -> PathBuf {
        self.model_dir(model).join("evals").join(format!("{version}.json"))
    }

    /// Evaluation reports attached to a version, oldest first.
    pub fn evals(&self, model: &Name, version: u32) -> Result<Vec<EvalRecord>> {
        let path = self.evals_path(model, version);
        if !path.is_file() {
            return Ok(Vec::new());
        }
        read_json(&path)
    }

    fn write_aliases(&self, model: &Name, aliases: &Aliases) -> Result<()> {
        let path = self.aliases_path(model);
        if let Some(dir) = path.parent() {
            fsx::sweep_temp_files(dir);
        }
        write_json(&path, aliases)
    }
}

fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| RegistryError::Corrupt {
        path: path.to_owned(),
        reason: format!("cannot serialise: {e}"),
    })?;
    bytes.push(b'\n');
    fsx::write_atomic(path, &bytes).map_err(RegistryError::io("write", path))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(RegistryError::io("read", path))?;
    serde_json::from_slice(&bytes).map_err(|e| RegistryError::Corrupt {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn join_or_none<'a>(items: impl Iterator<Item = &'a Name>) -> String {
    let list: Vec<&str> = items.map(Name::as_str).collect();
    if list.is_empty() {
        "none".to_owned()
    } else {
        list.join(", ")
    }
}

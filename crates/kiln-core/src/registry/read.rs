//! Reading the registry: listings that survive corrupt entries, and version resolution.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Aliases, ModelRecord, Registry, RegistryError, Result, VersionManifest, join_or_none, read_json};
use crate::fsx;
use crate::names::{ModelRef, Name, Selector};

/// A registry entry that could not be read, and why. Reported, then skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The model the entry belongs to, when known.
    pub model: Option<String>,
    pub path: PathBuf,
    pub reason: String,
}

/// One model with every readable version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelDetail {
    pub record: ModelRecord,
    /// Readable versions, oldest first.
    pub versions: Vec<VersionManifest>,
    pub aliases: Aliases,
}

impl ModelDetail {
    /// The newest readable version.
    pub fn latest(&self) -> Option<&VersionManifest> {
        self.versions.last()
    }

    /// Aliases pointing at `version`.
    pub fn aliases_of(&self, version: u32) -> Vec<&Name> {
        self.aliases
            .iter()
            .filter(|(_, v)| **v == version)
            .map(|(a, _)| a)
            .collect()
    }
}

/// Short per-model line for `kiln models ls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub name: Name,
    pub task: String,
    pub versions: usize,
    pub latest: Option<u32>,
    pub aliases: Aliases,
}

impl From<&ModelDetail> for ModelSummary {
    fn from(m: &ModelDetail) -> Self {
        Self {
            name: m.record.name.clone(),
            task: m.record.task.clone(),
            versions: m.versions.len(),
            latest: m.latest().map(|v| v.version),
            aliases: m.aliases.clone(),
        }
    }
}

/// Everything readable in the registry, plus what was not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Listing {
    pub models: Vec<ModelDetail>,
    pub problems: Vec<Problem>,
}

impl Registry {
    /// Reads every model; corrupt entries become [`Problem`]s instead of errors.
    pub fn scan(&self) -> Result<Listing> {
        let dir = self.root.join("models");
        let entries = fs::read_dir(&dir).map_err(RegistryError::io("list", &dir))?;
        let mut listing = Listing::default();
        let mut names: Vec<_> = entries.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for os_name in names {
            let raw = os_name.to_string_lossy().into_owned();
            if fsx::is_temp(&raw) {
                continue;
            }
            let Ok(name) = Name::new(&raw) else {
                let reason = "folder name is not a valid model name".to_owned();
                listing.problems.push(Problem {
                    model: None,
                    path: dir.join(&os_name),
                    reason,
                });
                continue;
            };
            match self.model(&name) {
                Ok((detail, problems)) => {
                    listing.models.push(detail);
                    listing.problems.extend(problems);
                }
                Err(e) => listing.problems.push(problem_from(&name, e)),
            }
        }
        Ok(listing)
    }

    /// Reads one model: its record, every readable version and its aliases.
    pub fn model(&self, model: &Name) -> Result<(ModelDetail, Vec<Problem>)> {
        let record = self.model_record(model)?;
        let mut problems = Vec::new();
        let mut versions = Vec::new();
        for n in self.version_numbers(model)? {
            match self.version(model, n) {
                Ok(v) => versions.push(v),
                Err(e) => problems.push(problem_from(model, e)),
            }
        }
        let aliases = self.aliases(model).unwrap_or_else(|e| {
            problems.push(problem_from(model, e));
            Aliases::new()
        });
        Ok((
            ModelDetail {
                record,
                versions,
                aliases,
            },
            problems,
        ))
    }

    /// The model's `model.json`.
    pub fn model_record(&self, model: &Name) -> Result<ModelRecord> {
        let path = self.model_dir(model).join("model.json");
        if !path.is_file() {
            return Err(RegistryError::UnknownModel(model.clone()));
        }
        let record: ModelRecord = read_json(&path)?;
        if &record.name != model {
            let reason = format!("records name '{}' but lives in folder '{model}'", record.name);
            return Err(RegistryError::Corrupt { path, reason });
        }
        Ok(record)
    }

    /// Version numbers present on disk (readable or not), ascending.
    pub fn version_numbers(&self, model: &Name) -> Result<Vec<u32>> {
        let dir = self.versions_dir(model);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(RegistryError::io("list", &dir)(e)),
        };
        let mut numbers: Vec<u32> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// One version's manifest, checked against where it lives.
    pub fn version(&self, model: &Name, version: u32) -> Result<VersionManifest> {
        let path = self.version_path(model, version);
        if !path.is_file() {
            self.model_record(model)?;
            let known = self
                .version_numbers(model)?
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>();
            let known = if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            };
            return Err(RegistryError::UnknownVersion {
                model: model.clone(),
                version,
                known,
            });
        }
        let manifest: VersionManifest = read_json(&path)?;
        if &manifest.model != model || manifest.version != version {
            let reason = format!(
                "describes {}@{} but is stored as {model}@{version}",
                manifest.model, manifest.version
            );
            return Err(RegistryError::Corrupt { path, reason });
        }
        Ok(manifest)
    }

    /// The model's aliases (empty when it has none).
    pub fn aliases(&self, model: &Name) -> Result<Aliases> {
        let path = self.aliases_path(model);
        match read_json(&path) {
            Err(RegistryError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                self.model_record(model)?;
                Ok(Aliases::new())
            }
            other => other,
        }
    }

    /// Turns `model[@version|alias]` into a concrete version number.
    pub fn resolve(&self, reference: &ModelRef) -> Result<u32> {
        let model = &reference.model;
        match &reference.selector {
            Selector::Version(v) => self.version(model, *v).map(|m| m.version),
            Selector::Alias(alias) => {
                let aliases = self.aliases(model)?;
                aliases.get(alias).copied().ok_or_else(|| RegistryError::UnknownAlias {
                    model: model.clone(),
                    alias: alias.clone(),
                    known: join_or_none(aliases.keys()),
                })
            }
            Selector::Latest => {
                self.model_record(model)?;
                self.version_numbers(model)?
                    .last()
                    .copied()
                    .ok_or_else(|| RegistryError::NoVersions(model.clone()))
            }
        }
    }
}

fn problem_from(model: &Name, error: RegistryError) -> Problem {
    let (path, reason) = match error {
        RegistryError::Corrupt { path, reason } => (path, reason),
        RegistryError::Io { path, source, .. } => (path, source.to_string()),
        other => (PathBuf::new(), other.to_string()),
    };
    Problem {
        model: Some(model.to_string()),
        path,
        reason,
    }
}

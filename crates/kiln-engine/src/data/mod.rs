//! Offline datasets, each loaded whole into memory and split by seed:
//! `fashion-mnist` (IDX files), `fortunes` (quote → category), `ratings-synth` (planted
//! low-rank ratings), and `csv:<file>` (`user,item,rating` for `mf`, numeric columns with a
//! trailing integer label for `mlp`).

mod csv;
mod fmnist;
mod fortunes;
mod ratings;
mod split;

use std::path::{Path, PathBuf};

use kiln_core::kinds::DataSource;
use kiln_core::names::Digest;
use kiln_core::registry::DataFile;

pub use fortunes::{Vocab, known_words, validation_quote};
pub use split::{Inputs, Split, Targets};

/// The tokenizer and vocabulary stored with a text model's version (its `vocab` blob,
/// verified on read); `None` for models without one.
pub fn stored_vocab(
    registry: &kiln_core::registry::Registry,
    manifest: &kiln_core::registry::VersionManifest,
) -> anyhow::Result<Option<Vocab>> {
    match manifest.draft.blobs.get("vocab") {
        Some(digest) => Ok(Some(serde_json::from_slice(&registry.blobs().read(digest)?)?)),
        None => Ok(None),
    }
}

/// What one input row is, which decides the architectures that fit and their default sizes.
#[derive(Debug, Clone, PartialEq)]
pub enum DataShape {
    Image {
        channels: usize,
        height: usize,
        width: usize,
    },
    Features(usize),
    Tokens {
        vocab: usize,
        len: usize,
    },
    Pairs {
        users: usize,
        items: usize,
    },
}

/// A loaded dataset: train/validation split by seed, plus a held-out test split if the data
/// ships one.
#[derive(Debug)]
pub struct Dataset {
    /// Stable id recorded in manifests, e.g. `fashion-mnist` or `csv:ratings.csv`.
    pub id: String,
    /// SHA-256 over the source files (or the generator's parameters).
    pub digest: Digest,
    /// Each source file with its own SHA-256 (none for generated data).
    pub files: Vec<DataFile>,
    pub shape: DataShape,
    /// Class names; empty for rating regression.
    pub classes: Vec<String>,
    pub train: Split,
    pub val: Split,
    pub test: Option<Split>,
    /// Tokenizer and vocabulary (text data only), stored with the version.
    pub vocab: Option<Vocab>,
}

/// A dataset that cannot be loaded, with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("dataset {id} not found at {}: {hint}", path.display())]
    Missing { id: String, path: PathBuf, hint: String },
    #[error("{} is not valid {what}: {reason}", path.display())]
    Malformed {
        path: PathBuf,
        what: &'static str,
        reason: String,
    },
    #[error("dataset {id} is too small: {reason}")]
    TooSmall { id: String, reason: String },
}

/// How to load: the dataset name, an optional location, the seed for the split, the cap on
/// training rows and, for text, a vocabulary to reuse.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions<'a> {
    pub path: Option<&'a Path>,
    pub seed: u64,
    pub limit: Option<usize>,
    pub vocab: Option<&'a Vocab>,
}

/// Whether `source` can be loaded from `path` (or its default place), without reading it:
/// what a job submission checks so a missing dataset is refused before anything queues.
pub fn check_available(source: &DataSource, path: Option<&Path>) -> Result<(), DataError> {
    match source {
        DataSource::FashionMnist => fmnist::files(path).map(drop),
        DataSource::Fortunes { categories } => fortunes::categories(path, categories).map(drop),
        DataSource::RatingsSynth => Ok(()),
        DataSource::Csv { path } if path.is_file() => Ok(()),
        DataSource::Csv { path } => Err(csv::missing(path)),
    }
}

/// Loads `source`.
pub fn load(source: &DataSource, options: &LoadOptions<'_>) -> Result<Dataset, DataError> {
    let mut dataset = match source {
        DataSource::FashionMnist => fmnist::load(options)?,
        DataSource::RatingsSynth => ratings::load(options)?,
        DataSource::Fortunes { categories } => fortunes::load(categories, options)?,
        DataSource::Csv { path } => csv::load(path, options)?,
    };
    if let Some(limit) = options.limit {
        dataset.train.truncate(limit);
    }
    if dataset.train.is_empty() || dataset.val.is_empty() {
        let reason = format!(
            "{} training and {} validation rows",
            dataset.train.len(),
            dataset.val.len()
        );
        return Err(DataError::TooSmall { id: dataset.id, reason });
    }
    Ok(dataset)
}

/// The files `source` is read from (none for generated data), in the order its digest
/// covers them.
pub fn source_files(source: &DataSource, path: Option<&Path>) -> Result<Vec<PathBuf>, DataError> {
    Ok(match source {
        DataSource::FashionMnist => fmnist::files(path)?.to_vec(),
        DataSource::Fortunes { categories } => fortunes::categories(path, categories)?
            .into_iter()
            .map(|(_, p)| p)
            .collect(),
        DataSource::RatingsSynth => Vec::new(),
        DataSource::Csv { path } => vec![path.clone()],
    })
}

/// The files `source` is read from, each with the SHA-256 of its contents (what a pin holds).
pub fn file_digests(source: &DataSource, path: Option<&Path>) -> Result<Vec<DataFile>, DataError> {
    let paths = source_files(source, path)?;
    digest_files(&paths)
        .map(|(_, files)| files)
        .map_err(|e| DataError::Malformed {
            path: paths.first().cloned().unwrap_or_default(),
            what: "a readable data file",
            reason: e.to_string(),
        })
}

/// Checks that files read now (`now`, e.g. [`Dataset::files`]) still have the pinned
/// digests; names the first that changed, went missing, or was not pinned.
pub fn check_pin(now: &[DataFile], pin: &[DataFile]) -> Result<(), String> {
    for pinned in pin {
        match now.iter().find(|f| f.path == pinned.path) {
            None => {
                return Err(format!(
                    "pinned data file {} is no longer part of the dataset",
                    pinned.path.display()
                ));
            }
            Some(f) if f.digest != pinned.digest => {
                return Err(format!(
                    "pinned data file {} changed: it was {}, it is {} now; restore it, or train without the pin",
                    pinned.path.display(),
                    pinned.digest,
                    f.digest
                ));
            }
            Some(_) => {}
        }
    }
    match now.iter().find(|f| !pin.iter().any(|p| p.path == f.path)) {
        Some(extra) => Err(format!(
            "data file {} is not in the pin; pin the dataset again to include it",
            extra.path.display()
        )),
        None => Ok(()),
    }
}

/// SHA-256 over several files' contents, in order, and of each file alone: one read.
fn digest_files(paths: &[PathBuf]) -> std::io::Result<(Digest, Vec<DataFile>)> {
    use sha2::{Digest as _, Sha256};
    use std::io::Read;
    let mut all = Sha256::new();
    let mut files = Vec::with_capacity(paths.len());
    let mut buffer = vec![0u8; 1 << 16];
    for path in paths {
        let mut file = std::fs::File::open(path)?;
        let mut one = Sha256::new();
        loop {
            let n = file.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            all.update(&buffer[..n]);
            one.update(&buffer[..n]);
        }
        files.push(DataFile {
            path: path.clone(),
            digest: Digest::from_sha256(&one.finalize().into()),
        });
    }
    Ok((Digest::from_sha256(&all.finalize().into()), files))
}

/// A deterministic shuffle of `0..n` (splitmix64-driven Fisher-Yates).
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = SplitMix64(seed ^ 0x6b69_6c6e);
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order
}

/// Small, fast, reproducible generator for shuffles and synthetic data.
#[derive(Debug, Clone)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(f64::MIN_POSITIVE);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod pin_tests {
    use super::*;

    #[test]
    fn a_pin_holds_until_a_file_changes_and_then_names_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let csv = dir.path().join("data.csv");
        std::fs::write(&csv, "1,2,0\n3,4,1\n").expect("write");
        let source = DataSource::Csv { path: csv.clone() };
        let now = |source: &DataSource| file_digests(source, None).expect("digests");
        let pin = now(&source);
        assert_eq!(pin.len(), 1);
        assert_eq!(check_pin(&now(&source), &pin), Ok(()));
        std::fs::write(&csv, "1,2,0\n3,4,0\n").expect("rewrite");
        let err = check_pin(&now(&source), &pin).expect_err("changed");
        assert!(
            err.contains("data.csv changed") && err.contains(&pin[0].digest.to_string()),
            "{err}"
        );
        let other = DataSource::Csv {
            path: dir.path().join("other.csv"),
        };
        std::fs::write(dir.path().join("other.csv"), "1,2,0\n").expect("write");
        let err = check_pin(&now(&other), &pin).expect_err("another file");
        assert!(err.contains("no longer part of the dataset"), "{err}");
        assert!(check_pin(&now(&DataSource::RatingsSynth), &[]).is_ok());
    }
}

//! The closed sets kiln's processes agree on, each defined once: architectures, dataset kinds,
//! optimizers, learning-rate schedules and metric kinds. Each reads and writes as its
//! lowercase word (serde, `clap::ValueEnum`, `Display`, `FromStr`), so a job spec, a manifest,
//! the CLI and the console all spell them the same way.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Display` and `FromStr` through the variants' `ValueEnum` names, so the word a
/// user types, the word serde writes and the word shown are one.
macro_rules! word_enum {
    ($ty:ident, $what:literal) => {
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                let value = clap::ValueEnum::to_possible_value(self).expect("no variant is skipped");
                f.write_str(value.get_name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = $crate::kinds::UnknownWord;
            fn from_str(s: &str) -> Result<Self, $crate::kinds::UnknownWord> {
                <Self as clap::ValueEnum>::from_str(s, false).map_err(|_| $crate::kinds::UnknownWord {
                    what: $what,
                    word: s.to_owned(),
                    choices: Self::names().join(", "),
                })
            }
        }

        impl $ty {
            /// Every word, in declaration order.
            pub fn names() -> Vec<String> {
                <Self as clap::ValueEnum>::value_variants()
                    .iter()
                    .map(ToString::to_string)
                    .collect()
            }
        }
    };
}

pub(crate) use word_enum;

/// A word that names none of a closed set's members.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} '{word}': choose one of {choices}")]
pub struct UnknownWord {
    pub what: &'static str,
    pub word: String,
    pub choices: String,
}

/// A zoo architecture (DESIGN §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    /// Multi-layer perceptron: tabular rows or flattened images.
    Mlp,
    /// Convolutions + pooling + linear: images.
    Cnn,
    /// Embedding + LSTM/GRU: token sequences (text).
    Rnn,
    /// Matrix factorisation: user/item ratings.
    Mf,
}
word_enum!(Arch, "architecture");

impl Arch {
    /// The dataset it trains on when none is named.
    pub fn default_dataset(self) -> DatasetKind {
        match self {
            Self::Rnn => DatasetKind::Fortunes,
            Self::Mf => DatasetKind::RatingsSynth,
            Self::Mlp | Self::Cnn => DatasetKind::FashionMnist,
        }
    }
}

/// The kinds of data kiln loads (DESIGN §3, offline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Debian's dataset-fashion-mnist (IDX files).
    FashionMnist,
    /// Debian's fortunes: quote → category.
    Fortunes,
    /// Generated ratings with a planted low-rank truth.
    RatingsSynth,
    /// A CSV file of your own.
    Csv,
}
word_enum!(DatasetKind, "dataset");

impl DatasetKind {
    /// The built-in datasets (every kind but a CSV file of your own).
    pub const BUILT_IN: [Self; 3] = [Self::FashionMnist, Self::Fortunes, Self::RatingsSynth];

    /// A short form for default model names: `fmnist`.
    pub fn short_name(self) -> &'static str {
        match self {
            Self::FashionMnist => "fmnist",
            Self::Fortunes => "fortunes",
            Self::RatingsSynth => "ratings",
            Self::Csv => "csv",
        }
    }
}

/// The data a job names: `fashion-mnist`, `fortunes`, `fortunes:cat,…`, `ratings-synth` or
/// `csv:<file>`. Written and read as that text.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DataSource {
    FashionMnist,
    /// Every category, or only the named ones.
    Fortunes {
        categories: Vec<String>,
    },
    RatingsSynth,
    Csv {
        path: PathBuf,
    },
}

/// A dataset named in none of the forms [`DataSource`] reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown dataset '{0}': use fashion-mnist, fortunes[:cat,…], ratings-synth or csv:<file>")]
pub struct UnknownDataset(pub String);

impl DataSource {
    /// What kind of data this is.
    pub fn kind(&self) -> DatasetKind {
        match self {
            Self::FashionMnist => DatasetKind::FashionMnist,
            Self::Fortunes { .. } => DatasetKind::Fortunes,
            Self::RatingsSynth => DatasetKind::RatingsSynth,
            Self::Csv { .. } => DatasetKind::Csv,
        }
    }

    /// A built-in dataset with all of its data.
    pub fn built_in(kind: DatasetKind) -> Option<Self> {
        match kind {
            DatasetKind::FashionMnist => Some(Self::FashionMnist),
            DatasetKind::Fortunes => Some(Self::Fortunes { categories: Vec::new() }),
            DatasetKind::RatingsSynth => Some(Self::RatingsSynth),
            DatasetKind::Csv => None,
        }
    }

    /// The base of a default model name: the dataset's short name, or a CSV file's stem.
    pub fn stem(&self) -> String {
        match self {
            Self::Csv { path } => path
                .file_stem()
                .map(|s| s.to_string_lossy().to_lowercase())
                .unwrap_or_default(),
            other => other.kind().short_name().to_owned(),
        }
    }

    /// The same source with a relative CSV path made absolute against `base` (a client's
    /// working directory, before the path travels to the daemon).
    pub fn anchored(self, base: &Path) -> Self {
        match self {
            Self::Csv { path } if path.is_relative() => Self::Csv { path: base.join(path) },
            other => other,
        }
    }
}

impl fmt::Display for DataSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Fortunes { categories } if !categories.is_empty() => write!(f, "fortunes:{}", categories.join(",")),
            Self::Csv { path } => write!(f, "csv:{}", path.display()),
            other => write!(f, "{}", other.kind()),
        }
    }
}

impl FromStr for DataSource {
    type Err = UnknownDataset;
    fn from_str(s: &str) -> Result<Self, UnknownDataset> {
        let unknown = || UnknownDataset(s.to_owned());
        match s.split_once(':') {
            None => s
                .parse::<DatasetKind>()
                .ok()
                .and_then(Self::built_in)
                .ok_or_else(unknown),
            Some(("fortunes", categories)) => {
                let categories: Vec<String> = categories
                    .split(',')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect();
                if categories.is_empty() {
                    return Err(unknown());
                }
                Ok(Self::Fortunes { categories })
            }
            Some(("csv", path)) if !path.is_empty() => Ok(Self::Csv { path: path.into() }),
            Some(_) => Err(unknown()),
        }
    }
}

impl Serialize for DataSource {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DataSource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// A compute device: `cpu` or `cuda:N`. Written and read as that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceName {
    Cpu,
    Cuda(usize),
}

/// A device named in neither form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown device '{0}': use cpu or cuda:N")]
pub struct UnknownDevice(pub String);

impl fmt::Display for DeviceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for DeviceName {
    type Err = UnknownDevice;
    fn from_str(s: &str) -> Result<Self, UnknownDevice> {
        match s {
            "cpu" => Ok(Self::Cpu),
            _ => s
                .strip_prefix("cuda:")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| UnknownDevice(s.to_owned())),
        }
    }
}

impl Serialize for DeviceName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// The optimizers the training loop builds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    #[default]
    Adam,
    Adamw,
    /// SGD with momentum 0.9.
    Sgd,
}
word_enum!(Optimizer, "optimizer");

/// Learning-rate schedules.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Decay from the learning rate towards 0 over the whole run.
    #[default]
    Cosine,
    /// The same learning rate throughout.
    Constant,
}
word_enum!(Schedule, "schedule");

/// What a metric record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Running training averages, at least once a second.
    Train,
    /// Validation at the end of each epoch.
    Val,
    /// Per-layer statistics, about once a second.
    Layers,
}
word_enum!(MetricKind, "metric kind");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_back_as_written_in_every_form() {
        for arch in [Arch::Mlp, Arch::Cnn, Arch::Rnn, Arch::Mf] {
            let word = arch.to_string();
            assert_eq!(word.parse::<Arch>(), Ok(arch));
            assert_eq!(serde_json::to_value(arch).ok(), Some(serde_json::json!(word)));
        }
        assert_eq!(
            DatasetKind::RatingsSynth.to_string(),
            serde_json::to_value(DatasetKind::RatingsSynth)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        );
        let err = "xyz".parse::<Arch>().expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "unknown architecture 'xyz': choose one of mlp, cnn, rnn, mf"
        );
    }

    #[test]
    fn data_sources_parse_and_print_the_documented_forms() {
        for text in [
            "fashion-mnist",
            "fortunes",
            "fortunes:art,science",
            "ratings-synth",
            "csv:/tmp/x.csv",
        ] {
            let source: DataSource = text.parse().expect(text);
            assert_eq!(source.to_string(), text);
        }
        assert_eq!("csv:rel/x.csv".parse::<DataSource>().map(|s| s.stem()), Ok("x".into()));
        for bad in ["nonexist", "csv:", "fortunes:", "mnist:x", ""] {
            assert!(bad.parse::<DataSource>().is_err(), "{bad} should be refused");
        }
        let anchored = "csv:x.csv".parse::<DataSource>().map(|s| s.anchored(Path::new("/w")));
        assert_eq!(anchored.map(|s| s.to_string()), Ok("csv:/w/x.csv".into()));
    }
}

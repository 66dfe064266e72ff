//! The model zoo: `mlp`, `cnn`, `rnn` and `mf`, each with a serde config stored in the version
//! manifest so the exact model can be rebuilt from the registry alone.

mod cnn;
mod mf;
mod mlp;
mod rnn;

pub use cnn::{Cnn, CnnConfig};
pub use mf::{Mf, MfConfig};
pub use mlp::{Mlp, MlpConfig};
pub use rnn::{Rnn, RnnConfig};

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

/// A zoo architecture and its configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", content = "config", rename_all = "lowercase")]
pub enum ArchConfig {
    Mlp(MlpConfig),
    Cnn(CnnConfig),
    Rnn(RnnConfig),
    Mf(MfConfig),
}

/// A built model of any zoo architecture.
// A handful exist per process (one per job or deployment), so variant size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum ZooModel {
    Mlp(Mlp),
    Cnn(Cnn),
    Rnn(Rnn),
    Mf(Mf),
}

/// A configuration that cannot describe a model.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown architecture '{0}': choose one of mlp, cnn, rnn, mf")]
    UnknownArch(String),
    #[error("invalid {arch} config: {reason}")]
    Invalid { arch: &'static str, reason: String },
}

impl ArchConfig {
    /// Parses the config of architecture `arch` from JSON, filling defaults and checking sizes.
    pub fn from_json(arch: &str, config: serde_json::Value) -> Result<Self, ConfigError> {
        let invalid = |arch: &'static str| {
            move |e: serde_json::Error| ConfigError::Invalid {
                arch,
                reason: e.to_string(),
            }
        };
        let parsed = match arch {
            "mlp" => Self::Mlp(serde_json::from_value(config).map_err(invalid("mlp"))?),
            "cnn" => Self::Cnn(serde_json::from_value(config).map_err(invalid("cnn"))?),
            "rnn" => Self::Rnn(serde_json::from_value(config).map_err(invalid("rnn"))?),
            "mf" => Self::Mf(serde_json::from_value(config).map_err(invalid("mf"))?),
            other => return Err(ConfigError::UnknownArch(other.to_owned())),
        };
        parsed.validate()?;
        Ok(parsed)
    }

    /// The zoo name (`mlp`, `cnn`, `rnn`, `mf`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Mlp(_) => "mlp",
            Self::Cnn(_) => "cnn",
            Self::Rnn(_) => "rnn",
            Self::Mf(_) => "mf",
        }
    }

    /// The config alone, with every default spelled out, as stored in the manifest.
    pub fn config_json(&self) -> serde_json::Value {
        let value = match self {
            Self::Mlp(c) => serde_json::to_value(c),
            Self::Cnn(c) => serde_json::to_value(c),
            Self::Rnn(c) => serde_json::to_value(c),
            Self::Mf(c) => serde_json::to_value(c),
        };
        value.unwrap_or(serde_json::Value::Null)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let reason = match self {
            Self::Mlp(c) => c.check(),
            Self::Cnn(c) => c.check(),
            Self::Rnn(c) => c.check(),
            Self::Mf(c) => c.check(),
        };
        match reason {
            Some(reason) => Err(ConfigError::Invalid {
                arch: self.name(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Builds a freshly initialised model on `device`.
    pub fn init(&self, device: &Device) -> ZooModel {
        match self {
            Self::Mlp(c) => ZooModel::Mlp(c.init(device)),
            Self::Cnn(c) => ZooModel::Cnn(c.init(device)),
            Self::Rnn(c) => ZooModel::Rnn(c.init(device)),
            Self::Mf(c) => ZooModel::Mf(c.init(device)),
        }
    }
}

/// Returns `Some(reason)` when any of the named sizes is zero.
fn zero_sizes(fields: &[(&str, usize)]) -> Option<String> {
    let zero: Vec<&str> = fields.iter().filter(|(_, v)| *v == 0).map(|(n, _)| *n).collect();
    (!zero.is_empty()).then(|| format!("{} must be at least 1", zero.join(", ")))
}

impl ArchConfig {
    /// Runs one forward pass on a zero batch of two and checks the output is finite, proving
    /// the weights fit and compute.
    pub fn smoke_forward(&self, model: &ZooModel, device: &Device) -> Result<(), String> {
        use burn::tensor::{Int, Tensor};
        let output: Vec<f32> = match (self, model) {
            (Self::Mlp(c), ZooModel::Mlp(m)) => flat(m.forward(Tensor::zeros([2, c.inputs], device))),
            (Self::Cnn(c), ZooModel::Cnn(m)) => {
                flat(m.forward(Tensor::zeros([2, c.channels, c.height, c.width], device)))
            }
            (Self::Rnn(_), ZooModel::Rnn(m)) => flat(m.forward(Tensor::<2, Int>::ones([2, 4], device))),
            (Self::Mf(_), ZooModel::Mf(m)) => flat(m.forward(Tensor::<2, Int>::zeros([2, 2], device))),
            _ => return Err(format!("model does not match its {} config", self.name())),
        };
        match output.iter().all(|v| v.is_finite()) {
            true => Ok(()),
            false => Err("a forward pass produced NaN or infinite values".into()),
        }
    }
}

fn flat<const D: usize>(tensor: burn::tensor::Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap_or_default()
}

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
use kiln_core::kinds::Arch;
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

/// A built model of any zoo architecture; each carries the config it was built from, so
/// a model and its config can never disagree.
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
#[error("invalid {arch} config: {reason}")]
pub struct ConfigError {
    pub arch: Arch,
    pub reason: String,
}

/// Past this many weights a config is refused before anything is allocated (16 GiB of f32).
const MAX_PARAMETERS: u64 = 1 << 32;

impl ArchConfig {
    /// Parses the config of `arch` from JSON, filling defaults and checking sizes.
    pub fn from_json(arch: Arch, config: serde_json::Value) -> Result<Self, ConfigError> {
        let invalid = |e: serde_json::Error| ConfigError {
            arch,
            reason: e.to_string(),
        };
        let parsed = match arch {
            Arch::Mlp => Self::Mlp(serde_json::from_value(config).map_err(invalid)?),
            Arch::Cnn => Self::Cnn(serde_json::from_value(config).map_err(invalid)?),
            Arch::Rnn => Self::Rnn(serde_json::from_value(config).map_err(invalid)?),
            Arch::Mf => Self::Mf(serde_json::from_value(config).map_err(invalid)?),
        };
        parsed.validate()?;
        Ok(parsed)
    }

    /// Checks user `overrides` of an `arch` config (field names, types, limits) before any
    /// data is loaded: they are merged over stand-in data sizes, as a job merges them over the
    /// sizes its data implies.
    pub fn check_overrides(arch: Arch, overrides: &serde_json::Value) -> Result<(), ConfigError> {
        let mut config = match arch {
            Arch::Mlp => serde_json::json!({ "inputs": 784, "classes": 10 }),
            Arch::Cnn => serde_json::json!({ "channels": 1, "height": 28, "width": 28, "classes": 10 }),
            Arch::Rnn => serde_json::json!({ "vocab": 1000, "classes": 4 }),
            Arch::Mf => serde_json::json!({ "users": 100, "items": 100 }),
        };
        if let (Some(target), Some(overrides)) = (config.as_object_mut(), overrides.as_object()) {
            target.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Self::from_json(arch, config).map(drop)
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        match self {
            Self::Mlp(_) => Arch::Mlp,
            Self::Cnn(_) => Arch::Cnn,
            Self::Rnn(_) => Arch::Rnn,
            Self::Mf(_) => Arch::Mf,
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

    /// The manifest's record of it.
    pub fn architecture(&self) -> kiln_core::registry::Architecture {
        kiln_core::registry::Architecture {
            name: self.arch(),
            config: self.config_json(),
        }
    }

    /// Classes a classifier predicts; `None` for the rating regressor.
    pub fn classes(&self) -> Option<usize> {
        match self {
            Self::Mlp(c) => Some(c.classes),
            Self::Cnn(c) => Some(c.classes),
            Self::Rnn(c) => Some(c.classes),
            Self::Mf(_) => None,
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let reason = match self {
            Self::Mlp(c) => c.check(),
            Self::Cnn(c) => c.check(),
            Self::Rnn(c) => c.check(),
            Self::Mf(c) => c.check(),
        };
        match reason {
            Some(reason) => Err(ConfigError {
                arch: self.arch(),
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

/// Returns `Some(reason)` when a model would hold more than [`MAX_PARAMETERS`] weights (or
/// its count overflowed: `None`).
fn too_large(parameters: Option<u64>) -> Option<String> {
    match parameters {
        Some(n) if n <= MAX_PARAMETERS => None,
        Some(n) => Some(format!(
            "{n} parameters is more than the {MAX_PARAMETERS} kiln builds; use smaller sizes"
        )),
        None => Some("the sizes overflow: use smaller sizes".to_owned()),
    }
}

impl ZooModel {
    /// The config this model was built from.
    pub fn config(&self) -> ArchConfig {
        match self {
            Self::Mlp(m) => ArchConfig::Mlp(m.config.clone()),
            Self::Cnn(m) => ArchConfig::Cnn(m.config.clone()),
            Self::Rnn(m) => ArchConfig::Rnn(m.config.clone()),
            Self::Mf(m) => ArchConfig::Mf(m.config.clone()),
        }
    }

    /// The architecture.
    pub fn arch(&self) -> Arch {
        self.config().arch()
    }

    /// The model with its weights in `dtype`, for half-precision inference. Only `mlp` and
    /// `cnn` cast their inputs to match; for the others `Err` says so.
    pub fn cast(self, dtype: burn::tensor::DType) -> Result<Self, String> {
        use crate::compress::cast;
        match self {
            Self::Mlp(m) => Ok(Self::Mlp(cast(m, dtype))),
            Self::Cnn(m) => Ok(Self::Cnn(cast(m, dtype))),
            other => Err(format!("{} computes in f32 only in kiln", other.arch())),
        }
    }

    /// Runs one forward pass on a zero batch of two and checks the output is finite, proving
    /// the weights fit and compute.
    pub fn smoke_forward(&self, device: &Device) -> Result<(), String> {
        use burn::tensor::{Int, Tensor};
        let output: Vec<f32> = match self {
            Self::Mlp(m) => flat(m.forward(Tensor::zeros([2, m.config.inputs], device))),
            Self::Cnn(m) => {
                let [channels, height, width] = m.input_shape();
                flat(m.forward(Tensor::zeros([2, channels, height, width], device)))
            }
            Self::Rnn(m) => flat(m.forward(Tensor::<2, Int>::ones([2, 4], device))),
            Self::Mf(m) => flat(m.forward(Tensor::<2, Int>::zeros([2, 2], device))),
        };
        match output.iter().all(|v| v.is_finite()) {
            true => Ok(()),
            false => Err("a forward pass produced NaN or infinite values".into()),
        }
    }
}

/// `tensor` in `dtype`, untouched (no graph node) when it already is.
fn to_dtype<const D: usize>(tensor: burn::tensor::Tensor<D>, dtype: burn::tensor::DType) -> burn::tensor::Tensor<D> {
    match tensor.dtype() == dtype {
        true => tensor,
        false => tensor.cast(dtype),
    }
}

fn flat<const D: usize>(tensor: burn::tensor::Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_to_vec::<f32>().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_overflow_or_outgrow_memory_are_refused_before_anything_is_built() {
        let huge = serde_json::json!({ "inputs": usize::MAX, "hidden": [usize::MAX], "classes": 2 });
        let err = ArchConfig::from_json(Arch::Mlp, huge).expect_err("overflow");
        assert!(err.to_string().contains("overflow"), "{err}");
        let big = serde_json::json!({ "height": 1 << 20, "width": 1 << 20, "classes": 10 });
        let err = ArchConfig::from_json(Arch::Cnn, big).expect_err("too large");
        assert!(err.to_string().contains("parameters"), "{err}");
        let ok = serde_json::json!({ "height": 28, "width": 28, "classes": 10 });
        assert!(ArchConfig::from_json(Arch::Cnn, ok).is_ok());
    }
}

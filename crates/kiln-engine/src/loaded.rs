//! A registry version rebuilt into a runnable model: config from the manifest, weights from
//! the verified blob.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use burn::tensor::{DType, Device, Int, Tensor, TensorData};
use kiln_core::compression::Precision;
use kiln_core::registry::{Registry, VersionManifest};

use super::model::{ArchConfig, ZooModel};
use super::weights;

/// A model ready for forward passes.
#[derive(Debug)]
pub struct LoadedModel {
    pub manifest: VersionManifest,
    pub model: ZooModel,
    pub device: Device,
}

impl LoadedModel {
    /// Loads `model@version` onto `device`, verifying the weights blob on the way.
    pub fn from_registry(registry: &Registry, manifest: VersionManifest, device: Device) -> anyhow::Result<Self> {
        let digest = manifest.draft.blobs.get("weights").ok_or_else(|| {
            anyhow::anyhow!(
                "{}@{} has no weights blob in its manifest",
                manifest.model,
                manifest.version
            )
        })?;
        let bytes = registry.blobs().read(digest)?;
        Self::from_bytes(manifest, bytes, device)
    }

    /// Builds the model `manifest` describes from its stored weights `bytes` (f32, half or
    /// int8: every stored form loads to f32), cast to the precision a compressed version
    /// computes in.
    pub fn from_bytes(manifest: VersionManifest, bytes: Vec<u8>, device: Device) -> anyhow::Result<Self> {
        let compute = manifest
            .draft
            .compression
            .as_ref()
            .map_or(Precision::F32, |c| c.compute);
        Self::computing_in(manifest, bytes, compute, device)
    }

    /// [`Self::from_bytes`] computing in `compute`, whatever the manifest says (a version
    /// being built, before its manifest records it).
    pub fn computing_in(
        manifest: VersionManifest,
        bytes: Vec<u8>,
        compute: Precision,
        device: Device,
    ) -> anyhow::Result<Self> {
        let architecture = &manifest.draft.architecture;
        let arch = ArchConfig::from_json(architecture.name, architecture.config.clone())?;
        let mut model = arch.init(&device);
        weights::load_bytes(&mut model, bytes)?;
        let model = match half_dtype(compute) {
            Some(dtype) => model.cast(dtype).map_err(|reason| anyhow::anyhow!(reason))?,
            None => model,
        };
        Ok(Self {
            manifest,
            model,
            device,
        })
    }

    /// Features one input row must have: flattened image, feature vector, token ids or
    /// `(user, item)`; `None` for variable-length token sequences.
    pub fn row_len(&self) -> Option<usize> {
        match &self.model {
            ZooModel::Mlp(m) => Some(m.config.inputs),
            ZooModel::Cnn(m) => m.config.input_len(),
            ZooModel::Rnn(_) => None,
            ZooModel::Mf(_) => Some(2),
        }
    }

    /// Runs a batch of equally long rows; returns one output row per input row.
    pub fn forward_rows(&self, rows: &[Vec<f32>]) -> Result<Vec<Vec<f32>>, String> {
        let batch = rows.len();
        let width = rows.first().map_or(0, Vec::len);
        if batch == 0 || width == 0 {
            return Err("empty input: send at least one non-empty row".into());
        }
        if let Some(bad) = rows.iter().position(|r| r.len() != width) {
            return Err(format!(
                "row {bad} has {} values but row 0 has {width}",
                rows[bad].len()
            ));
        }
        if let Some(expected) = self.row_len().filter(|&n| n != width) {
            return Err(format!(
                "each row needs {expected} values for this {}, got {width}",
                self.model.arch()
            ));
        }
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        self.forward_flat(flat, batch, width)
    }

    /// Runs `batch` rows of `width` values, given flattened row-major; checks integer inputs
    /// (token, user and item ids) against the model's tables first.
    pub fn forward_flat(&self, flat: Vec<f32>, batch: usize, width: usize) -> Result<Vec<Vec<f32>>, String> {
        if batch.checked_mul(width) != Some(flat.len()) || batch == 0 {
            return Err(format!("{} values do not make {batch} rows of {width}", flat.len()));
        }
        let ints = |flat: &[f32]| {
            let ids: Vec<i64> = flat.iter().map(|v| *v as i64).collect();
            Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, width]), &self.device)
        };
        let out: Tensor<2> = match &self.model {
            ZooModel::Mlp(m) => m.forward(Tensor::<2>::from_data(
                TensorData::new(flat, [batch, width]),
                &self.device,
            )),
            ZooModel::Cnn(m) => {
                let [channels, height, width] = m.input_shape();
                m.forward(Tensor::<4>::from_data(
                    TensorData::new(flat, [batch, channels, height, width]),
                    &self.device,
                ))
            }
            ZooModel::Rnn(m) => {
                check_ids(&flat, m.config.vocab, "token id")?;
                m.forward(ints(&flat))
            }
            ZooModel::Mf(m) => {
                check_pairs(&flat, m.config.users, m.config.items)?;
                m.forward(ints(&flat)).reshape([batch, 1])
            }
        };
        let values = out
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| format!("cannot read output: {e:?}"))?;
        let cols = values.len() / batch;
        Ok(values.chunks(cols.max(1)).map(<[f32]>::to_vec).collect())
    }
}

/// The burn dtype of a half precision; `None` for f32 (and int8, which loads dequantized).
pub fn half_dtype(precision: Precision) -> Option<DType> {
    match precision {
        Precision::Bf16 => Some(DType::BF16),
        Precision::Fp16 => Some(DType::F16),
        Precision::F32 | Precision::Int8 => None,
    }
}

fn check_ids(values: &[f32], limit: usize, what: &str) -> Result<(), String> {
    match values
        .iter()
        .find(|v| v.fract() != 0.0 || **v < 0.0 || **v as usize >= limit)
    {
        Some(v) => Err(format!("{what} {v} is not an integer in 0..{limit}")),
        None => Ok(()),
    }
}

fn check_pairs(values: &[f32], users: usize, items: usize) -> Result<(), String> {
    for pair in values.chunks(2) {
        check_ids(&pair[..1], users, "user id")?;
        check_ids(&pair[1..], items, "item id")?;
    }
    Ok(())
}

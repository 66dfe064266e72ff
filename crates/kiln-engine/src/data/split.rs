//! Rows of one split and how they become tensors.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// Input rows, flat: floats (pixels, features) or integer ids (tokens, user/item pairs).
#[derive(Debug, Clone)]
pub enum Inputs {
    Floats(Vec<f32>),
    Ids(Vec<i64>),
}

/// Targets: class indices or ratings.
#[derive(Debug, Clone)]
pub enum Targets {
    Classes(Vec<i64>),
    Ratings(Vec<f32>),
}

/// `len` rows of `row_len` values each, with their targets.
#[derive(Debug, Clone)]
pub struct Split {
    pub inputs: Inputs,
    pub row_len: usize,
    pub targets: Targets,
}

impl Split {
    /// Rows in the split.
    pub fn len(&self) -> usize {
        match &self.targets {
            Targets::Classes(t) => t.len(),
            Targets::Ratings(t) => t.len(),
        }
    }

    /// Whether the split has no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the first `n` rows.
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        match &mut self.inputs {
            Inputs::Floats(v) => v.truncate(n * self.row_len),
            Inputs::Ids(v) => v.truncate(n * self.row_len),
        }
        match &mut self.targets {
            Targets::Classes(t) => t.truncate(n),
            Targets::Ratings(t) => t.truncate(n),
        }
    }

    /// Builds a split from the rows of `self` picked by `indices`.
    pub fn select(&self, indices: &[usize]) -> Split {
        let rows = |values: &[f32]| {
            indices
                .iter()
                .flat_map(|&i| &values[i * self.row_len..(i + 1) * self.row_len])
                .copied()
                .collect()
        };
        let ids = |values: &[i64]| {
            indices
                .iter()
                .flat_map(|&i| &values[i * self.row_len..(i + 1) * self.row_len])
                .copied()
                .collect()
        };
        let inputs = match &self.inputs {
            Inputs::Floats(v) => Inputs::Floats(rows(v)),
            Inputs::Ids(v) => Inputs::Ids(ids(v)),
        };
        let targets = match &self.targets {
            Targets::Classes(t) => Targets::Classes(indices.iter().map(|&i| t[i]).collect()),
            Targets::Ratings(t) => Targets::Ratings(indices.iter().map(|&i| t[i]).collect()),
        };
        Split {
            inputs,
            row_len: self.row_len,
            targets,
        }
    }

    /// Splits off the last `fraction` of rows (after shuffling by `seed`) as validation.
    pub fn shuffle_split(&self, fraction: f64, seed: u64) -> (Split, Split) {
        let order = super::permutation(self.len(), seed);
        let val_len = ((self.len() as f64 * fraction).round() as usize).clamp(1, self.len().saturating_sub(1).max(1));
        let (train, val) = order.split_at(self.len() - val_len);
        (self.select(train), self.select(val))
    }

    /// Float inputs of the given rows as `[batch, row_len]`.
    pub fn float_batch(&self, rows: &[usize], device: &Device) -> Tensor<2> {
        let data: Vec<f32> = match &self.inputs {
            Inputs::Floats(v) => rows
                .iter()
                .flat_map(|&i| &v[i * self.row_len..(i + 1) * self.row_len])
                .copied()
                .collect(),
            Inputs::Ids(v) => rows
                .iter()
                .flat_map(|&i| &v[i * self.row_len..(i + 1) * self.row_len])
                .map(|&x| x as f32)
                .collect(),
        };
        Tensor::from_data(TensorData::new(data, [rows.len(), self.row_len]), device)
    }

    /// Integer inputs of the given rows as `[batch, row_len]`.
    pub fn id_batch(&self, rows: &[usize], device: &Device) -> Tensor<2, Int> {
        let data: Vec<i64> = match &self.inputs {
            Inputs::Ids(v) => rows
                .iter()
                .flat_map(|&i| &v[i * self.row_len..(i + 1) * self.row_len])
                .copied()
                .collect(),
            Inputs::Floats(v) => rows
                .iter()
                .flat_map(|&i| &v[i * self.row_len..(i + 1) * self.row_len])
                .map(|&x| x as i64)
                .collect(),
        };
        Tensor::from_data(TensorData::new(data, [rows.len(), self.row_len]), device)
    }

    /// Class targets of the given rows.
    pub fn class_batch(&self, rows: &[usize], device: &Device) -> Tensor<1, Int> {
        let data: Vec<i64> = match &self.targets {
            Targets::Classes(t) => rows.iter().map(|&i| t[i]).collect(),
            Targets::Ratings(t) => rows.iter().map(|&i| t[i] as i64).collect(),
        };
        Tensor::from_data(TensorData::new(data, [rows.len()]), device)
    }

    /// Rating targets of the given rows.
    pub fn rating_batch(&self, rows: &[usize], device: &Device) -> Tensor<1> {
        let data: Vec<f32> = match &self.targets {
            Targets::Ratings(t) => rows.iter().map(|&i| t[i]).collect(),
            Targets::Classes(t) => rows.iter().map(|&i| t[i] as f32).collect(),
        };
        Tensor::from_data(TensorData::new(data, [rows.len()]), device)
    }
}

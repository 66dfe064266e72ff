//! What each zoo model predicts from a batch of split rows, and the loss and scores that go
//! with it: cross-entropy and accuracy for classifiers, MSE and RMSE for `mf`.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::tensor::{Device, Int, Tensor};

use super::data::Split;
use super::layers::Probe;
use super::model::{Cnn, Mf, Mlp, Rnn};

/// A batch's predictions.
#[derive(Debug)]
pub enum Prediction {
    /// Class logits `[batch, classes]`.
    Logits(Tensor<2>),
    /// Predicted ratings `[batch]`.
    Ratings(Tensor<1>),
}

/// A model that can be trained and scored on [`Split`] rows.
pub trait Task: Module + Clone + Send + 'static {
    /// Predicts the given rows of `data`.
    fn predict(&self, data: &Split, rows: &[usize], device: &Device) -> Prediction;

    /// Predicts as [`Task::predict`] does, showing each ReLU layer's output to `probe` (a
    /// model without ReLU layers has nothing to show).
    fn predict_probed(&self, data: &Split, rows: &[usize], device: &Device, probe: &mut Probe) -> Prediction {
        let _ = probe;
        self.predict(data, rows, device)
    }
}

impl Task for Mlp {
    fn predict(&self, data: &Split, rows: &[usize], device: &Device) -> Prediction {
        self.predict_probed(data, rows, device, &mut Probe::off())
    }

    fn predict_probed(&self, data: &Split, rows: &[usize], device: &Device, probe: &mut Probe) -> Prediction {
        Prediction::Logits(self.forward_probed(data.float_batch(rows, device), probe))
    }
}

impl Task for Cnn {
    fn predict(&self, data: &Split, rows: &[usize], device: &Device) -> Prediction {
        self.predict_probed(data, rows, device, &mut Probe::off())
    }

    fn predict_probed(&self, data: &Split, rows: &[usize], device: &Device, probe: &mut Probe) -> Prediction {
        let x = data.float_batch(rows, device);
        let [batch, _] = x.dims();
        let [c, h, w] = self.input_shape();
        Prediction::Logits(self.forward_probed(x.reshape([batch, c, h, w]), probe))
    }
}

impl Task for Rnn {
    fn predict(&self, data: &Split, rows: &[usize], device: &Device) -> Prediction {
        Prediction::Logits(self.forward(data.id_batch(rows, device)))
    }
}

impl Task for Mf {
    fn predict(&self, data: &Split, rows: &[usize], device: &Device) -> Prediction {
        Prediction::Ratings(self.forward(data.id_batch(rows, device)))
    }
}

/// Sums over one batch, to be accumulated and averaged.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchScore {
    pub rows: usize,
    /// Sum of per-row losses.
    pub loss_sum: f64,
    /// Correct predictions (classifiers).
    pub correct: usize,
    /// Sum of squared and absolute rating errors (`mf`).
    pub squared_error: f64,
    pub absolute_error: f64,
}

impl BatchScore {
    pub fn add(&mut self, other: BatchScore) {
        self.rows += other.rows;
        self.loss_sum += other.loss_sum;
        self.correct += other.correct;
        self.squared_error += other.squared_error;
        self.absolute_error += other.absolute_error;
    }

    pub fn mean_loss(&self) -> f64 {
        self.loss_sum / self.rows.max(1) as f64
    }

    pub fn accuracy(&self) -> f64 {
        self.correct as f64 / self.rows.max(1) as f64
    }

    pub fn rmse(&self) -> f64 {
        (self.squared_error / self.rows.max(1) as f64).sqrt()
    }

    pub fn mae(&self) -> f64 {
        self.absolute_error / self.rows.max(1) as f64
    }
}

/// The mean loss of a prediction against the rows' targets (differentiable).
pub fn loss(prediction: &Prediction, data: &Split, rows: &[usize], device: &Device) -> Tensor<1> {
    match prediction {
        Prediction::Logits(logits) => CrossEntropyLossConfig::new()
            .init(device)
            .forward(logits.clone(), data.class_batch(rows, device)),
        Prediction::Ratings(ratings) => {
            MseLoss::new().forward(ratings.clone(), data.rating_batch(rows, device), Reduction::Mean)
        }
    }
}

/// Scores a prediction (no gradients needed): loss sum, correct count or rating errors.
pub fn score(prediction: &Prediction, mean_loss: f64, data: &Split, rows: &[usize], device: &Device) -> BatchScore {
    let n = rows.len();
    let mut score = BatchScore {
        rows: n,
        loss_sum: mean_loss * n as f64,
        ..Default::default()
    };
    match prediction {
        Prediction::Logits(logits) => {
            let predicted: Tensor<1, Int> = logits.clone().argmax(1).reshape([n]);
            let hits = predicted
                .equal(data.class_batch(rows, device))
                .int()
                .sum()
                .into_scalar::<i64>();
            score.correct = hits as usize;
        }
        Prediction::Ratings(ratings) => {
            let diff = ratings.clone() - data.rating_batch(rows, device);
            score.squared_error = diff.clone().powi_scalar(2).sum().into_scalar::<f64>();
            score.absolute_error = diff.abs().sum().into_scalar::<f64>();
        }
    }
    score
}

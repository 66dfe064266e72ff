//! Evaluation of a stored version: accuracy, per-class precision/recall/F1, macro-F1 and the
//! confusion matrix for classifiers; RMSE/MAE for `mf`; mean latency per sample.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::time::Instant;

use burn::tensor::{Device, Int, Tensor};

use kiln_core::registry::{ClassScore, EvalReport};

use super::data::{Split, Targets};
use super::model::ZooModel;
use super::task::{Prediction, Task};

/// Predictions for every row of a split, and the forward time they took.
pub struct Collected {
    pub predicted_classes: Vec<i64>,
    pub predicted_ratings: Vec<f32>,
    pub seconds: f64,
}

/// Runs `model` over `data` in batches.
pub fn collect(model: &ZooModel, data: &Split, device: &Device) -> Collected {
    match model {
        ZooModel::Mlp(m) => collect_with(m, data, device),
        ZooModel::Cnn(m) => collect_with(m, data, device),
        ZooModel::Rnn(m) => collect_with(m, data, device),
        ZooModel::Mf(m) => collect_with(m, data, device),
    }
}

fn collect_with<M: Task>(model: &M, data: &Split, device: &Device) -> Collected {
    let rows: Vec<usize> = (0..data.len()).collect();
    let mut out = Collected {
        predicted_classes: Vec::new(),
        predicted_ratings: Vec::new(),
        seconds: 0.0,
    };
    for chunk in rows.chunks(256) {
        let started = Instant::now();
        match model.predict(data, chunk, device) {
            Prediction::Logits(logits) => {
                let classes: Tensor<1, Int> = logits.argmax(1).reshape([chunk.len()]);
                out.predicted_classes.extend(classes.into_data().iter::<i64>());
            }
            Prediction::Ratings(r) => out.predicted_ratings.extend(r.into_data().iter::<f32>()),
        }
        out.seconds += started.elapsed().as_secs_f64();
    }
    out
}

/// Seconds one forward pass over `rows` of `data` takes, its output read back to the host
/// (which waits for the device).
pub fn time_forward(model: &ZooModel, data: &Split, rows: &[usize], device: &Device) -> f64 {
    fn timed<M: Task>(model: &M, data: &Split, rows: &[usize], device: &Device) -> f64 {
        let started = Instant::now();
        let values = match model.predict(data, rows, device) {
            Prediction::Logits(logits) => logits.into_data().num_elements(),
            Prediction::Ratings(r) => r.into_data().num_elements(),
        };
        std::hint::black_box(values);
        started.elapsed().as_secs_f64()
    }
    match model {
        ZooModel::Mlp(m) => timed(m, data, rows, device),
        ZooModel::Cnn(m) => timed(m, data, rows, device),
        ZooModel::Rnn(m) => timed(m, data, rows, device),
        ZooModel::Mf(m) => timed(m, data, rows, device),
    }
}

/// Where a report's rows came from: the dataset, the split's name and the device.
#[derive(Debug, Clone, Copy)]
pub struct ReportOn<'a> {
    pub dataset: &'a str,
    /// `test` or `validation`.
    pub split: &'a str,
    pub device: &'a str,
}

/// Scores `model` (version `version` of `name`) on every row of `data` into a full report.
pub fn report(
    model: &ZooModel,
    name: &str,
    version: u32,
    data: &Split,
    classes: &[String],
    on: ReportOn<'_>,
    device: &Device,
) -> EvalReport {
    report_and_predictions(model, name, version, data, classes, on, device).0
}

/// [`report`], and the predictions it was scored from (the deploy gates compare two
/// versions' predictions row by row).
pub fn report_and_predictions(
    model: &ZooModel,
    name: &str,
    version: u32,
    data: &Split,
    classes: &[String],
    on: ReportOn<'_>,
    device: &Device,
) -> (EvalReport, Collected) {
    let collected = collect(model, data, device);
    let mut report = EvalReport {
        model: name.to_owned(),
        version,
        dataset: on.dataset.to_owned(),
        split: on.split.to_owned(),
        rows: data.len(),
        device: on.device.to_owned(),
        accuracy: None,
        macro_f1: None,
        per_class: Vec::new(),
        confusion_matrix: Vec::new(),
        rmse: None,
        mae: None,
        mean_latency_ms_per_sample: 0.0,
        created_at: kiln_core::registry::now_rfc3339(),
    };
    score(&mut report, &collected, data, classes);
    (report, collected)
}

/// Fills the classification or regression part of `report` from collected predictions.
pub fn score(report: &mut EvalReport, collected: &Collected, data: &Split, classes: &[String]) {
    report.mean_latency_ms_per_sample = collected.seconds * 1000.0 / data.len().max(1) as f64;
    match &data.targets {
        Targets::Classes(truth) => classification(report, &collected.predicted_classes, truth, classes),
        Targets::Ratings(truth) => {
            let n = truth.len().max(1) as f64;
            let errors = collected
                .predicted_ratings
                .iter()
                .zip(truth)
                .map(|(p, t)| f64::from(p - t));
            let (sq, abs) = errors.fold((0.0, 0.0), |(sq, abs), e| (sq + e * e, abs + e.abs()));
            report.rmse = Some((sq / n).sqrt());
            report.mae = Some(abs / n);
        }
    }
}

fn classification(report: &mut EvalReport, predicted: &[i64], truth: &[i64], classes: &[String]) {
    let k = classes.len();
    let mut matrix = vec![vec![0usize; k]; k];
    for (&p, &t) in predicted.iter().zip(truth) {
        if let (Ok(p), Ok(t)) = (usize::try_from(p), usize::try_from(t))
            && p < k
            && t < k
        {
            matrix[t][p] += 1;
        }
    }
    let correct: usize = (0..k).map(|i| matrix[i][i]).sum();
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    report.per_class = (0..k)
        .map(|c| {
            let support: usize = matrix[c].iter().sum();
            let predicted_c: usize = matrix.iter().map(|row| row[c]).sum();
            let precision = ratio(matrix[c][c], predicted_c);
            let recall = ratio(matrix[c][c], support);
            let f1 = if precision + recall == 0.0 {
                0.0
            } else {
                2.0 * precision * recall / (precision + recall)
            };
            ClassScore {
                class: classes[c].clone(),
                precision,
                recall,
                f1,
                support,
            }
        })
        .collect();
    report.accuracy = Some(ratio(correct, truth.len()));
    report.macro_f1 = Some(report.per_class.iter().map(|c| c.f1).sum::<f64>() / k.max(1) as f64);
    report.confusion_matrix = matrix;
}

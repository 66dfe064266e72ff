//! Evaluation of a stored version: accuracy, per-class precision/recall/F1, macro-F1 and the
//! confusion matrix for classifiers; RMSE/MAE for `mf`; mean latency per sample. With rows kept
//! ([`report_with_rows`]): every row's prediction, top classes and loss, and calibration.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::time::Instant;

use burn::tensor::Device;

use kiln_core::inspect::{CALIBRATION_BINS, Calibration, ReliabilityBin, RowPrediction, TOP_K};
use kiln_core::registry::{ClassScore, EvalReport};

use super::data::{Split, Targets};
use super::model::ZooModel;
use super::task::{Prediction, Task};

/// Predictions for every row of a split, and the forward time they took.
pub struct Collected {
    pub predicted_classes: Vec<i64>,
    pub predicted_ratings: Vec<f32>,
    pub seconds: f64,
    /// Every row's prediction in detail, when asked for.
    pub rows: Vec<RowPrediction>,
}

/// Runs `model` over `data` in batches.
pub fn collect(model: &ZooModel, data: &Split, device: &Device) -> Collected {
    collect_rows(model, data, device, false)
}

/// [`collect`], keeping every row's prediction in detail when `keep` is set.
fn collect_rows(model: &ZooModel, data: &Split, device: &Device, keep: bool) -> Collected {
    match model {
        ZooModel::Mlp(m) => collect_with(m, data, device, keep),
        ZooModel::Cnn(m) => collect_with(m, data, device, keep),
        ZooModel::Rnn(m) => collect_with(m, data, device, keep),
        ZooModel::Mf(m) => collect_with(m, data, device, keep),
    }
}

fn collect_with<M: Task>(model: &M, data: &Split, device: &Device, keep: bool) -> Collected {
    let rows: Vec<usize> = (0..data.len()).collect();
    let mut out = Collected {
        predicted_classes: Vec::new(),
        predicted_ratings: Vec::new(),
        seconds: 0.0,
        rows: Vec::new(),
    };
    for chunk in rows.chunks(256) {
        let started = Instant::now();
        match model.predict(data, chunk, device) {
            // The logits come back to the host either way: reading a batch's few logits and
            // taking the argmax here is faster than burn's argmax on the device and reading
            // that back, and it is what the rows kept need.
            Prediction::Logits(logits) => {
                let [_, classes] = logits.dims();
                let values: Vec<f32> = logits.into_data().iter::<f32>().collect();
                let Targets::Classes(truth) = &data.targets else {
                    unreachable!("a classifier's split has classes")
                };
                for (&row, logits) in chunk.iter().zip(values.chunks(classes.max(1))) {
                    if keep {
                        let kept = classified(row, logits, truth[row]);
                        out.predicted_classes.push(kept.prediction as i64);
                        out.rows.push(kept);
                    } else {
                        out.predicted_classes.push(first_max(logits) as i64);
                    }
                }
            }
            Prediction::Ratings(r) => {
                let start = out.predicted_ratings.len();
                out.predicted_ratings.extend(r.into_data().iter::<f32>());
                if let (true, Targets::Ratings(truth)) = (keep, &data.targets) {
                    for (&row, &rating) in chunk.iter().zip(&out.predicted_ratings[start..]) {
                        out.rows.push(RowPrediction {
                            index: row as u32,
                            label: truth[row],
                            prediction: rating,
                            top: Vec::new(),
                            loss: rating - truth[row],
                        });
                    }
                }
            }
        }
        out.seconds += started.elapsed().as_secs_f64();
    }
    out
}

/// The index of the largest value (the first of equal maxima).
fn first_max(values: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in values.iter().enumerate() {
        if *v > values[best] {
            best = i;
        }
    }
    best
}

/// One classified row from its logits: the argmax (the first of equal maxima, as the serving
/// path's), the [`TOP_K`] most probable classes, and the cross-entropy against `truth`.
fn classified(row: usize, logits: &[f32], truth: i64) -> RowPrediction {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    let top = order.iter().take(TOP_K).map(|&c| (c as u16, exp[c] / sum)).collect();
    let truth_index = usize::try_from(truth).unwrap_or(0).min(logits.len().saturating_sub(1));
    // log-softmax of the true class, computed without the probability underflowing to 0.
    let loss = sum.ln() - (logits[truth_index] - max);
    RowPrediction {
        index: row as u32,
        label: truth as f32,
        prediction: order.first().copied().unwrap_or(0) as f32,
        top,
        loss,
    }
}

/// Expected calibration error over [`CALIBRATION_BINS`] equal-width confidence bins.
pub fn calibration(rows: &[RowPrediction]) -> Calibration {
    let mut bins: Vec<ReliabilityBin> = (0..CALIBRATION_BINS)
        .map(|b| ReliabilityBin {
            lower: b as f64 / CALIBRATION_BINS as f64,
            upper: (b + 1) as f64 / CALIBRATION_BINS as f64,
            rows: 0,
            confidence: 0.0,
            accuracy: 0.0,
        })
        .collect();
    for row in rows {
        let confidence = f64::from(row.confidence());
        let b = ((confidence * CALIBRATION_BINS as f64) as usize).min(CALIBRATION_BINS - 1);
        bins[b].rows += 1;
        bins[b].confidence += confidence;
        bins[b].accuracy += f64::from(u8::from(row.prediction == row.label));
    }
    let total = rows.len().max(1) as f64;
    let mut ece = 0.0;
    for bin in bins.iter_mut().filter(|b| b.rows > 0) {
        bin.confidence /= bin.rows as f64;
        bin.accuracy /= bin.rows as f64;
        ece += bin.rows as f64 / total * (bin.accuracy - bin.confidence).abs();
    }
    Calibration { ece, bins }
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
    scored(model, name, version, data, classes, on, device, false)
}

/// [`report`] with calibration (classifiers), and every row's prediction in detail, as
/// `kiln eval` stores them.
pub fn report_with_rows(
    model: &ZooModel,
    name: &str,
    version: u32,
    data: &Split,
    classes: &[String],
    on: ReportOn<'_>,
    device: &Device,
) -> (EvalReport, Vec<RowPrediction>) {
    let (mut report, collected) = scored(model, name, version, data, classes, on, device, true);
    if !classes.is_empty() {
        report.calibration = Some(calibration(&collected.rows));
    }
    (report, collected.rows)
}

#[allow(clippy::too_many_arguments)]
fn scored(
    model: &ZooModel,
    name: &str,
    version: u32,
    data: &Split,
    classes: &[String],
    on: ReportOn<'_>,
    device: &Device,
    keep: bool,
) -> (EvalReport, Collected) {
    let collected = collect_rows(model, data, device, keep);
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
        calibration: None,
        predictions: None,
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

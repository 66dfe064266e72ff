//! Model debugging (`kiln inspect`, the console's drill-down): every row an evaluation scored
//! is stored beside its report ([`Predictions`], a zstd-compressed JSON blob the report names),
//! so a confusion-matrix cell, the hardest rows or the rows two versions disagree on can be
//! listed, and one row read again from its dataset and shown as the model saw it.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use kiln_core::inspect::{
    InspectQuery, Inspection, OtherAnswer, Predictions, RowPrediction, SampleDetail, SampleInput, SampleOrder,
    SampleView, TopClass, Word,
};
use kiln_core::kinds::DataSource;
use kiln_core::names::{Digest, Name};
use kiln_core::registry::{EvalReport, Registry};
use kiln_engine::data::{self, DataShape, Dataset, Inputs, LoadOptions, Split, Targets};

/// Samples an inspection lists unless told otherwise.
pub const DEFAULT_LIMIT: usize = 100;
/// A user's other ratings a rating sample shows at most.
const OTHER_RATINGS: usize = 20;

/// Why an inspection found nothing to show.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

/// Stores `predictions` as a blob; returns its digest.
pub fn store(registry: &Registry, predictions: &Predictions) -> anyhow::Result<Digest> {
    let json = serde_json::to_vec(predictions)?;
    let packed = zstd::encode_all(json.as_slice(), 3).context("cannot compress the predictions")?;
    Ok(registry.blobs().put_bytes(&packed)?)
}

fn read(registry: &Registry, digest: &Digest) -> anyhow::Result<Predictions> {
    let packed = registry.blobs().read(digest)?;
    let json = zstd::decode_all(packed.as_slice()).with_context(|| format!("predictions blob {digest} is corrupt"))?;
    serde_json::from_slice(&json).with_context(|| format!("predictions blob {digest} is corrupt"))
}

/// A fingerprint of `split`'s rows: its shape, every target and every 64th row's inputs.
pub fn fingerprint(split: &Split) -> String {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&(split.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&(split.row_len as u64).to_le_bytes());
    match &split.targets {
        Targets::Classes(t) => t.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
        Targets::Ratings(t) => t.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
    }
    let width = split.row_len.max(1);
    for row in (0..split.len()).step_by(64) {
        let range = row * width..(row + 1) * width;
        match &split.inputs {
            Inputs::Floats(v) => v[range].iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
            Inputs::Ids(v) => v[range].iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes())),
        }
    }
    kiln_core::registry::sha256(&bytes).to_string()
}

/// The newest evaluation of `model@version` that stored its predictions, and those.
pub fn latest(registry: &Registry, model: &Name, version: u32) -> Result<(EvalReport, Predictions), InspectError> {
    let evals = registry.evals(model, version).map_err(anyhow::Error::from)?;
    for record in evals.iter().rev() {
        let bytes = registry.blobs().read(&record.report).map_err(anyhow::Error::from)?;
        let report: EvalReport =
            serde_json::from_slice(&bytes).with_context(|| format!("eval report {} is corrupt", record.report))?;
        if let Some(digest) = &report.predictions {
            let predictions = read(registry, digest)?;
            return Ok((report, predictions));
        }
    }
    Err(InspectError::NotFound(format!(
        "{model}@{version} has no evaluation with stored predictions; run `kiln eval {model}@{version} --data …` first"
    )))
}

/// The samples `query` asks for.
pub fn inspect(
    registry: &Registry,
    model: &Name,
    version: u32,
    query: &InspectQuery,
) -> Result<Inspection, InspectError> {
    let (report, predictions) = latest(registry, model, version)?;
    let classes = &predictions.classes;
    let rating = classes.is_empty();
    let mut picked: Vec<(&RowPrediction, Option<OtherAnswer>)> = match (&query.cell, query.worst, query.disagree) {
        (Some(cell), None, None) => {
            let (truth, predicted) = cell_of(cell, classes)?;
            predictions
                .rows
                .iter()
                .filter(|r| r.label == truth as f32 && r.prediction == predicted as f32)
                .map(|r| (r, None))
                .collect()
        }
        (None, Some(_), None) | (None, None, None) => predictions.rows.iter().map(|r| (r, None)).collect(),
        (None, None, Some(other)) => disagreements(registry, model, other, &predictions)?,
        _ => {
            return Err(InspectError::Unprocessable(
                "ask for one of a cell, the worst rows or a version to compare with".into(),
            ));
        }
    };
    let order = if query.worst.is_some() {
        SampleOrder::Loss
    } else {
        query.sort.unwrap_or(SampleOrder::Confidence)
    };
    let loss = |r: &RowPrediction| if rating { r.loss.abs() } else { r.loss };
    match order {
        SampleOrder::Confidence => picked.sort_by(|a, b| b.0.confidence().total_cmp(&a.0.confidence())),
        SampleOrder::Loss => picked.sort_by(|a, b| loss(b.0).total_cmp(&loss(a.0))),
    }
    let total = picked.len();
    let limit = query.worst.or(query.limit).unwrap_or(DEFAULT_LIMIT);
    let samples = picked
        .into_iter()
        .take(limit)
        .map(|(row, other)| SampleView {
            other,
            ..view(row, classes)
        })
        .collect();
    Ok(Inspection {
        model: model.clone(),
        version,
        dataset: report.dataset,
        split: report.split,
        classes: classes.clone(),
        total,
        samples,
    })
}

/// `TRUE,PRED` as class indexes or names.
fn cell_of(cell: &str, classes: &[String]) -> Result<(usize, usize), InspectError> {
    if classes.is_empty() {
        return Err(InspectError::Unprocessable(
            "ratings have no confusion matrix; ask for the worst rows instead".into(),
        ));
    }
    let class = |text: &str| {
        let text = text.trim();
        text.parse::<usize>()
            .ok()
            .filter(|&i| i < classes.len())
            .or_else(|| classes.iter().position(|c| c == text))
            .ok_or_else(|| {
                InspectError::Unprocessable(format!(
                    "no class '{text}': use an index 0–{} or one of {}",
                    classes.len() - 1,
                    classes.join(", ")
                ))
            })
    };
    let Some((truth, predicted)) = cell.split_once(',') else {
        return Err(InspectError::Unprocessable(format!(
            "cell '{cell}' is not TRUE,PRED (e.g. 0,6 or shirt,t-shirt/top)"
        )));
    };
    Ok((class(truth)?, class(predicted)?))
}

/// The rows where version `other` predicts otherwise, with its answer. Both evaluations must
/// have scored the same rows.
fn disagreements<'a>(
    registry: &Registry,
    model: &Name,
    other: u32,
    mine: &'a Predictions,
) -> Result<Vec<(&'a RowPrediction, Option<OtherAnswer>)>, InspectError> {
    let (_, theirs) = latest(registry, model, other)?;
    let same_rows = theirs.fingerprint == mine.fingerprint && theirs.rows.len() == mine.rows.len();
    if !same_rows {
        return Err(InspectError::Unprocessable(format!(
            "the evaluations of the two versions scored different rows ({} {} split, seed {}, {} rows against {} {} split, seed {}, {} rows); evaluate both on the same data and limit",
            mine.data,
            mine.split,
            mine.seed,
            mine.rows.len(),
            theirs.data,
            theirs.split,
            theirs.seed,
            theirs.rows.len()
        )));
    }
    let rating = mine.classes.is_empty();
    Ok(mine
        .rows
        .iter()
        .zip(&theirs.rows)
        .filter(|(a, b)| a.index == b.index && !crate::serve::canary::same(a.prediction, b.prediction))
        .map(|(a, b)| {
            let answer = OtherAnswer {
                version: other,
                prediction: label(b.prediction, &mine.classes),
                confidence: if rating { 1.0 } else { b.confidence() },
            };
            (a, Some(answer))
        })
        .collect())
}

fn label(value: f32, classes: &[String]) -> String {
    if classes.is_empty() {
        return format!("{value:.2}");
    }
    classes
        .get(value as usize)
        .cloned()
        .unwrap_or_else(|| format!("class {value}"))
}

fn view(row: &RowPrediction, classes: &[String]) -> SampleView {
    SampleView {
        index: row.index,
        label: label(row.label, classes),
        prediction: label(row.prediction, classes),
        confidence: row.confidence(),
        loss: row.loss,
        top: row
            .top
            .iter()
            .map(|&(class, probability)| TopClass {
                class: label(f32::from(class), classes),
                probability,
            })
            .collect(),
        other: None,
    }
}

/// Row `index` of `model@version`'s latest evaluation, read again from its dataset.
pub fn sample(registry: &Registry, model: &Name, version: u32, index: u32) -> Result<SampleDetail, InspectError> {
    let (_, predictions) = latest(registry, model, version)?;
    let row = predictions.rows.iter().find(|r| r.index == index).ok_or_else(|| {
        InspectError::NotFound(format!(
            "the evaluation of {model}@{version} has no row {index} (it scored {} rows)",
            predictions.rows.len()
        ))
    })?;
    let manifest = registry.version(model, version).map_err(anyhow::Error::from)?;
    let vocab = data::stored_vocab(registry, &manifest)?;
    let dataset = dataset(&predictions, vocab.as_ref())?;
    let split = match (predictions.split.as_str(), &dataset.test) {
        ("test", Some(test)) => test,
        _ => &dataset.val,
    };
    let i = index as usize;
    if i >= split.len() {
        return Err(InspectError::NotFound(format!(
            "{} has only {} {} rows now; was it changed since the evaluation?",
            dataset.id,
            split.len(),
            predictions.split
        )));
    }
    let input = match (&dataset.shape, &split.inputs) {
        (
            DataShape::Image {
                channels,
                height,
                width,
            },
            Inputs::Floats(values),
        ) => SampleInput::Image {
            channels: *channels,
            height: *height,
            width: *width,
            pixels: values[i * split.row_len..(i + 1) * split.row_len].to_vec(),
        },
        (DataShape::Tokens { .. }, _) => text(&predictions, vocab.as_ref(), i)?,
        (DataShape::Pairs { .. }, Inputs::Ids(ids)) => {
            let (user, item) = (ids[i * 2], ids[i * 2 + 1]);
            SampleInput::Rating {
                user: user as u32,
                item: item as u32,
                rating: row.label,
                others: ratings_of(&dataset.train, user),
            }
        }
        (_, Inputs::Floats(values)) => SampleInput::Features {
            values: values[i * split.row_len..(i + 1) * split.row_len].to_vec(),
        },
        (_, Inputs::Ids(ids)) => SampleInput::Features {
            values: ids[i * split.row_len..(i + 1) * split.row_len]
                .iter()
                .map(|&v| v as f32)
                .collect(),
        },
    };
    Ok(SampleDetail {
        sample: view(row, &predictions.classes),
        input,
    })
}

/// The quote behind a fortunes row, word by word.
fn text(predictions: &Predictions, vocab: Option<&data::Vocab>, row: usize) -> Result<SampleInput, InspectError> {
    let (DataSource::Fortunes { categories }, Some(vocab)) = (&predictions.data, vocab) else {
        return Err(InspectError::Unprocessable(format!(
            "cannot show text rows of {}",
            predictions.data
        )));
    };
    let options = LoadOptions {
        path: predictions.data_path.as_deref(),
        seed: predictions.seed,
        limit: None,
        vocab: Some(vocab),
    };
    let quote = data::validation_quote(categories, &options, row).map_err(anyhow::Error::from)?;
    let words = data::known_words(vocab, &quote)
        .into_iter()
        .map(|(text, known)| Word { text, known })
        .collect();
    Ok(SampleInput::Text { text: quote, words })
}

/// `user`'s ratings in the training split (what the model learned about them).
fn ratings_of(train: &Split, user: i64) -> Vec<(u32, f32)> {
    let (Inputs::Ids(ids), Targets::Ratings(ratings)) = (&train.inputs, &train.targets) else {
        return Vec::new();
    };
    ids.chunks(2)
        .zip(ratings)
        .filter(|(pair, _)| pair[0] == user)
        .take(OTHER_RATINGS)
        .map(|(pair, &rating)| (pair[1] as u32, rating))
        .collect()
}

/// The dataset an evaluation read, loaded once and kept for the next sample of it.
fn dataset(predictions: &Predictions, vocab: Option<&data::Vocab>) -> anyhow::Result<Arc<Dataset>> {
    type Cached = Option<(String, Arc<Dataset>)>;
    static LAST: Mutex<Cached> = Mutex::new(None);
    let key = format!(
        "{}|{:?}|{}|{}",
        predictions.data,
        predictions.data_path,
        predictions.seed,
        vocab.map_or(0, |v| v.tokens.len())
    );
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((cached, dataset)) = last.as_ref()
        && *cached == key
    {
        return Ok(dataset.clone());
    }
    let options = LoadOptions {
        path: predictions.data_path.as_deref(),
        seed: predictions.seed,
        limit: None,
        vocab,
    };
    let dataset = Arc::new(data::load(&predictions.data, &options)?);
    *last = Some((key, dataset.clone()));
    Ok(dataset)
}

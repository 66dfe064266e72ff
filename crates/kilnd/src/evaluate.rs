//! `kilnd eval`: score a stored version on a dataset and attach the report to the version.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::path::PathBuf;

use anyhow::{anyhow, bail};
use burn::tensor::Device;
use kiln_core::inspect::Predictions;
use kiln_core::jobs::EvalSplit;
use kiln_core::kinds::DataSource;
use kiln_core::names::ModelRef;
use kiln_core::registry::{EvalRecord, EvalReport, Registry};

use kiln_engine::data::{self, LoadOptions};
use kiln_engine::eval;
use kiln_engine::loaded::LoadedModel;

/// Arguments of `kilnd eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// `<model>[@<version|alias>]`.
    pub reference: ModelRef,
    /// Dataset: fashion-mnist, fortunes[:cat,…], ratings-synth or csv:<file>.
    #[arg(long)]
    pub data: DataSource,
    /// Folder holding the dataset's files, when not the default.
    #[arg(long)]
    pub data_path: Option<PathBuf>,
    /// Score only the first N rows.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Which split [default: test when the dataset has one, else val].
    #[arg(long)]
    pub split: Option<EvalSplit>,
}

/// Evaluates and attaches the report; returns it.
pub fn run(args: &EvalArgs) -> anyhow::Result<EvalReport> {
    let registry = Registry::open(&kiln_core::home::kiln_home()?)?;
    let version = registry.resolve(&args.reference)?;
    let manifest = registry.version(&args.reference.model, version)?;
    let vocab = data::stored_vocab(&registry, &manifest)?;
    let seed = manifest.draft.seed.unwrap_or(0);
    let options = LoadOptions {
        path: args.data_path.as_deref(),
        seed,
        limit: None,
        vocab: vocab.as_ref(),
    };
    let dataset = data::load(&args.data, &options)?;
    let (split_name, mut split) = match (args.split, dataset.test) {
        (Some(EvalSplit::Val), _) | (None, None) => ("validation", dataset.val),
        (_, Some(test)) => ("test", test),
        (Some(EvalSplit::Test), None) => {
            bail!("{} has no test split; use --split val", dataset.id)
        }
    };
    if let Some(limit) = args.limit {
        split.truncate(limit);
    }
    let loaded = LoadedModel::from_registry(&registry, manifest, Device::libtorch())?;
    check_fits(&loaded, &split, dataset.classes.len(), &dataset.id)?;
    let on = eval::ReportOn {
        dataset: &dataset.id,
        split: split_name,
        device: "cpu",
    };
    let name = loaded.manifest.model.to_string();
    let (mut report, rows) = eval::report_with_rows(
        &loaded.model,
        &name,
        version,
        &split,
        &dataset.classes,
        on,
        &loaded.device,
    );
    let predictions = Predictions {
        data: args.data.clone(),
        data_path: args.data_path.clone(),
        seed,
        split: split_name.to_owned(),
        classes: dataset.classes.clone(),
        fingerprint: crate::inspect::fingerprint(&split),
        rows,
    };
    report.predictions = Some(crate::inspect::store(&registry, &predictions)?);
    attach(&registry, &args.reference, version, &report)?;
    Ok(report)
}

fn check_fits(loaded: &LoadedModel, split: &data::Split, classes: usize, id: &str) -> anyhow::Result<()> {
    if let Some(expected) = loaded.row_len().filter(|&n| n != split.row_len) {
        bail!(
            "{id} rows have {} values but this {} expects {expected}",
            split.row_len,
            loaded.model.arch()
        );
    }
    match loaded.model.config().classes() {
        Some(n) if n != classes => bail!("{id} has {classes} classes but the model predicts {n}"),
        None if classes > 0 => bail!("{id} is a classification dataset; mf models need ratings"),
        _ => Ok(()),
    }
}

/// Stores `report` as a blob and attaches it to `version` with its headline figures.
pub(crate) fn attach(
    registry: &Registry,
    reference: &ModelRef,
    version: u32,
    report: &EvalReport,
) -> anyhow::Result<()> {
    let digest = registry.blobs().put_bytes(&serde_json::to_vec_pretty(report)?)?;
    let figures = [
        ("accuracy", report.accuracy),
        ("macro_f1", report.macro_f1),
        ("rmse", report.rmse),
        ("mae", report.mae),
    ];
    let metrics = figures
        .iter()
        .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
        .collect();
    let record = EvalRecord {
        report: digest,
        dataset: report.dataset.clone(),
        split: report.split.clone(),
        created_at: report.created_at.clone(),
        metrics,
    };
    let lock = registry.lock()?;
    registry
        .attach_eval(&lock, &reference.model, version, record)
        .map_err(|e| anyhow!(e))
}

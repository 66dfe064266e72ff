//! `kiln prune` and `kiln quantize`: submit a compress job for a stored version, follow it
//! (a fine-tune shows progress like training), then print the child's comparison with its
//! parent. The daemon refuses what makes no sense before anything runs (exit 2).

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::daemon::connect;
use super::error::CliError;
use super::follow::follow_to_end;
use super::jobs::exit_code;
use super::output::emit;
use kiln_core::api::{JobRequest, VersionManifest};
use kiln_core::compression::{CompressRequest, Method, Precision, PruneScope, PruneSettings, QuantizeSettings};
use kiln_core::jobs::{JobId, JobState};
use kiln_core::kinds::{DataSource, DeviceName};
use kiln_core::names::{ModelRef, Name};

/// Options every compress job takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Register the child under this model [default: the parent's].
    #[arg(long)]
    name: Option<Name>,
    /// Data to measure on, and to fine-tune on after pruning [default: the parent's dataset].
    #[arg(long)]
    data: Option<DataSource>,
    /// Folder (or file) holding the dataset, when not the default.
    #[arg(long)]
    data_path: Option<PathBuf>,
    /// Use at most N training rows for the fine-tune and N test rows for the comparison.
    #[arg(long)]
    limit: Option<usize>,
    /// cpu or cuda:N [default: cuda:0 when libtorch sees a GPU, else cpu].
    #[arg(long)]
    device: Option<DeviceName>,
    /// Print the job id and return at once; the daemon runs the job.
    #[arg(long)]
    detach: bool,
}

/// `kiln prune` arguments.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The parent `<model>@<version|alias>`.
    reference: ModelRef,
    /// Share to remove, strictly between 0 and 1: of the weights, or with --structured of
    /// the hidden units and conv filters.
    #[arg(long)]
    sparsity: f64,
    /// Remove whole hidden units (mlp) and conv filters (cnn), rebuilding smaller layers.
    #[arg(long)]
    structured: bool,
    /// Where an unstructured share is counted: global (one threshold) or layer (each tensor).
    #[arg(long, value_enum, default_value_t = PruneScope::Global)]
    scope: PruneScope,
    /// Also prune biases.
    #[arg(long)]
    biases: bool,
    /// Also prune embedding tables.
    #[arg(long)]
    embeddings: bool,
    /// Epochs of fine-tuning after pruning (pruned weights stay zero).
    #[arg(long, default_value_t = 1)]
    finetune_epochs: usize,
    /// Fine-tune learning rate [default: the parent's, with a cosine decay].
    #[arg(long)]
    lr: Option<f64>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[command(flatten)]
    common: Common,
}

/// `kiln quantize` arguments.
#[derive(Debug, Args)]
#[group(id = "precision", required = true, multiple = false)]
pub struct QuantizeArgs {
    /// The parent `<model>@<version|alias>`.
    reference: ModelRef,
    /// int8 weights, symmetric per output channel with f32 scales (about 4x smaller).
    #[arg(long, group = "precision")]
    int8: bool,
    /// bfloat16 weights (2x smaller); computed in bf16 on CUDA, and on the CPU only where
    /// measured faster than f32.
    #[arg(long, group = "precision")]
    bf16: bool,
    /// float16 weights (2x smaller); computed in fp16 on CUDA, and on the CPU only where
    /// measured faster than f32.
    #[arg(long, group = "precision")]
    fp16: bool,
    #[command(flatten)]
    common: Common,
}

/// `kiln prune`.
pub fn prune(args: &PruneArgs, json: bool) -> Result<u8, CliError> {
    let settings = PruneSettings {
        sparsity: args.sparsity,
        structured: args.structured,
        scope: args.scope,
        biases: args.biases,
        embeddings: args.embeddings,
        finetune_epochs: args.finetune_epochs,
        lr: args.lr,
        batch_size: args.batch_size,
    };
    submit(&args.reference, Method::Prune(settings), &args.common, json)
}

/// `kiln quantize`.
pub fn quantize(args: &QuantizeArgs, json: bool) -> Result<u8, CliError> {
    let precision = match (args.int8, args.bf16, args.fp16) {
        (true, _, _) => Precision::Int8,
        (_, true, _) => Precision::Bf16,
        (_, _, true) => Precision::Fp16,
        _ => return Err(CliError::bad_input("choose --int8, --bf16 or --fp16")),
    };
    submit(
        &args.reference,
        Method::Quantize(QuantizeSettings { precision }),
        &args.common,
        json,
    )
}

/// What `--json` prints when the job has ended.
#[derive(Debug, Serialize)]
struct CompressEnd<'a> {
    job: &'a JobId,
    state: JobState,
    message: &'a str,
    version: Option<&'a ModelRef>,
    /// The child's manifest (with its `compression` report) when one was registered.
    manifest: Option<&'a VersionManifest>,
}

fn submit(reference: &ModelRef, method: Method, common: &Common, json: bool) -> Result<u8, CliError> {
    let base =
        std::env::current_dir().map_err(|e| CliError::failure(format!("cannot read the working directory: {e}")))?;
    let request = CompressRequest {
        reference: reference.clone(),
        method,
        model: common.name.clone(),
        data: common.data.clone().map(|d| d.anchored(&base)),
        data_path: common.data_path.as_ref().map(|p| base.join(p)),
        limit: common.limit,
        device: common.device,
        threads: None,
    };
    request.check().map_err(CliError::bad_input)?;
    let client = connect()?;
    let summary = format!("{} of {reference}", request.method);
    let request = JobRequest::Compress(request);
    let view = client.run(|c| c.submit(&request))?;
    let id = &view.id;
    eprintln!("job {id} queued: {summary} (follow with `kiln jobs logs -f {id}`)");
    if common.detach {
        emit(json, &view, || id.to_string())?;
        return Ok(0);
    }
    let Some(status) = follow_to_end(&client, id, json)? else {
        return Ok(0);
    };
    let manifest = match (&status.version, status.state) {
        (Some(child), JobState::Succeeded) => Some(client.run(|c| c.version(&child.model, &child.selector))?.version),
        _ => None,
    };
    let end = CompressEnd {
        job: id,
        state: status.state,
        message: &status.message,
        version: status.version.as_ref(),
        manifest: manifest.as_ref(),
    };
    emit(json, &end, || {
        let mut text = format!("job {id} {}: {}", status.state, status.message);
        if let Some(m) = &manifest
            && let Some(compression) = &m.draft.compression
        {
            let parent = m
                .draft
                .parent
                .as_ref()
                .map(|p| format!("{}@{}", p.model, p.version))
                .unwrap_or_default();
            text.push_str("\n\n");
            text.push_str(
                compression
                    .render(&parent, &format!("{}@{}", m.model, m.version))
                    .trim_end(),
            );
        }
        text
    })?;
    if !json && status.state == JobState::Failed {
        eprintln!("worker log: `kiln jobs logs {id}`");
    }
    Ok(exit_code(status.state))
}

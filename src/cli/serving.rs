//! `kiln deploy`, `kiln rollback`, `kiln deployments` (over the control API) and
//! `kiln predict` (one request to the inference endpoint, KServe v2).

use std::io::Read;
use std::path::{Path, PathBuf};

use clap::Args;
use serde_json::Value;

use super::daemon::connect;
use super::error::{CliError, NOT_FOUND};
use super::output::emit;
use super::table;
use kiln_core::api::kserve::{InferInput, InferRequest, InferResponse, ModelMetadata};
use kiln_core::api::{Batching, DeployRequest, Deployments, GateRequest, Journal, JournalEntry, RollbackRequest};
use kiln_core::client::{Blocking, Inference};
use kiln_core::deploy::{Action, CanarySpec};
use kiln_core::names::{ModelRef, Name, Selector};

/// `kiln deploy` arguments.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("split").args(["canary", "shadow"]).multiple(false))]
pub struct DeployArgs {
    /// `<model>[@<version|alias>]` to serve (default: the newest version).
    reference: ModelRef,
    /// Most rows per forward pass [daemon default: 64].
    #[arg(long)]
    max_batch: Option<usize>,
    /// Longest wait for a fuller batch under load, in microseconds [daemon default: 2000; a
    /// lone request never waits].
    #[arg(long)]
    max_delay_us: Option<u64>,
    /// Requests queued before answering 503 [daemon default: 256].
    #[arg(long)]
    queue: Option<usize>,
    /// Switch even if a gate fails (the golden check: no worse than 1 point of accuracy or
    /// macro-F1 on the candidate's test split; latency: p99 at batch 1 within 1.25× of the
    /// version in force). The override and the figures are journaled.
    #[arg(long)]
    force: bool,
    /// Rows of the candidate's test split both versions answer in the golden check.
    #[arg(long, default_value_t = kiln_core::deploy::GOLDEN_SAMPLES)]
    gate_samples: usize,
    /// Start a canary: this share of live requests (e.g. `10%`) goes to the candidate while
    /// the version in force answers the rest; it is rolled back automatically when its error
    /// rate or p99 is worse, and promoted at the end.
    #[arg(long, value_parser = parse_percent, conflicts_with = "shadow")]
    canary: Option<f64>,
    /// Start a shadow: the version in force answers every request and the candidate gets a
    /// copy of each; its answers are discarded, their disagreement rate and its latency
    /// recorded (`kiln canary status`). It ends only with `kiln canary promote|abort`.
    #[arg(long)]
    shadow: bool,
    /// How long the canary runs before it is promoted, or the shadow copies requests (e.g.
    /// `5m`) [default: 5m].
    #[arg(long = "for", requires = "split")]
    for_: Option<humantime::Duration>,
    /// Promote the canary once the candidate has answered this many requests (a shadow: stop
    /// copying after this many copies).
    #[arg(long, requires = "split")]
    requests: Option<u64>,
    /// Run the gates and print their figures without switching.
    #[arg(long, conflicts_with_all = ["force", "canary", "shadow"])]
    dry_run: bool,
}

/// `10%` or `10`: a share strictly between 0 and 100.
fn parse_percent(text: &str) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("{text:?} is not a percentage like 10%"))?;
    if value > 0.0 && value < 100.0 {
        Ok(value)
    } else {
        Err(format!(
            "a canary takes between 0% and 100% of the requests, not {value}%"
        ))
    }
}

/// `kiln canary status|promote|abort`.
#[derive(Debug, clap::Subcommand)]
pub enum CanaryCommand {
    /// Canaries and shadows in progress: the split, each side's requests, errors and p99, a
    /// shadow's disagreement, progress.
    Status,
    /// Promote a canary or shadow now: the candidate serves everything.
    Promote { model: Name },
    /// Abort a canary or shadow: the version in force answers everything again.
    Abort { model: Name },
}

pub fn canary(cmd: &CanaryCommand, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    match cmd {
        CanaryCommand::Status => {
            let list = client.run(|c| c.canaries())?;
            emit(json, &list, || {
                if list.canaries.is_empty() {
                    return "no canary or shadow is running".to_owned();
                }
                let rows: Vec<Vec<String>> = list
                    .canaries
                    .iter()
                    .map(|c| {
                        let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.2}"));
                        let split = if c.shadow {
                            format!("v{}→v{} shadow", c.stable, c.candidate)
                        } else {
                            format!("v{}→v{} {}%", c.stable, c.candidate, c.percent)
                        };
                        let disagree = c
                            .disagreement()
                            .map_or_else(|| "-".to_owned(), |d| format!("{:.1}% of {}", d * 100.0, c.compared));
                        vec![
                            c.model.to_string(),
                            split,
                            format!("{}/{}", c.candidate_requests, c.candidate_errors),
                            format!("{}/{}", c.stable_requests, c.stable_errors),
                            format!("{} / {}", ms(c.candidate_p99_ms), ms(c.stable_p99_ms)),
                            disagree,
                            format!("{:.0}%", c.progress * 100.0),
                        ]
                    })
                    .collect();
                table::render(
                    &[
                        "MODEL",
                        "SPLIT",
                        "CANDIDATE REQ/ERR",
                        "STABLE REQ/ERR",
                        "P99 MS C / S",
                        "DISAGREE",
                        "PROGRESS",
                    ],
                    &rows,
                )
                .trim_end()
                .to_owned()
            })?;
            Ok(0)
        }
        CanaryCommand::Promote { model } => {
            let entry = client.run(|c| c.promote_canary(model))?;
            print_entry(&entry, json)?;
            Ok(0)
        }
        CanaryCommand::Abort { model } => {
            let entry = client.run(|c| c.abort_canary(model))?;
            print_entry(&entry, json)?;
            Ok(0)
        }
    }
}

/// `kiln rollback` arguments.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    model: Name,
    /// Roll back to this earlier deployed version instead of the previous one.
    #[arg(long)]
    to: Option<u32>,
}

/// `kiln deployments` arguments.
#[derive(Debug, Args)]
pub struct DeploymentsArgs {
    /// Show the journal of every switch instead of what serves now.
    #[arg(long)]
    history: bool,
}

/// `kiln predict` arguments.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// `<model>` (the deployed version) or `<model>@<version>`.
    reference: String,
    /// A KServe v2 infer request, or just the input data as a (nested) JSON array; `-` reads
    /// stdin.
    input: PathBuf,
}

pub fn deploy(args: &DeployArgs, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    let request = DeployRequest {
        model: args.reference.model.clone(),
        version: match &args.reference.selector {
            Selector::Latest => None,
            other => Some(other.clone()),
        },
        batching: batching(args),
        force: args.force,
        gate_samples: Some(args.gate_samples),
        canary: split(args),
    };
    if args.dry_run {
        return dry_run(&client, &request, json);
    }
    eprintln!(
        "loading and warming up {}, then checking it against the version in force…",
        args.reference
    );
    let entry = client.run(|c| c.deploy(&request))?;
    print_entry(&entry, json)?;
    Ok(0)
}

/// The canary or shadow asked for.
fn split(args: &DeployArgs) -> Option<CanarySpec> {
    let percent = if args.shadow { Some(100.0) } else { args.canary }?;
    Some(CanarySpec {
        percent,
        shadow: args.shadow,
        seconds: args.for_.map(|d| d.as_secs().max(1)),
        requests: args.requests,
    })
}

/// `kiln deploy --dry-run`: the gates' figures; exit 5 when one fails, as a deploy would.
fn dry_run(client: &Blocking, deploy: &DeployRequest, json: bool) -> Result<u8, CliError> {
    let request = GateRequest {
        model: deploy.model.clone(),
        version: deploy.version.clone(),
        gate_samples: deploy.gate_samples,
    };
    eprintln!("running the gates of {} (nothing is switched)…", deploy.model);
    let result = client.run(|c| c.check_gates(&request))?;
    emit(json, &result, || {
        let against = result
            .current
            .map_or_else(|| "nothing in force".to_owned(), |v| format!("v{v} in force"));
        let verdict = if result.passed {
            "a deploy would switch"
        } else {
            "a deploy would be refused (--force switches anyway)"
        };
        format!(
            "{}@{} against {against}: {verdict}\n{}",
            result.model,
            result.version,
            result.report.summary()
        )
    })?;
    Ok(if result.passed { 0 } else { super::error::REFUSED })
}

/// The batching flags given, over the daemon's defaults for the rest; `None` when none is.
fn batching(args: &DeployArgs) -> Option<Batching> {
    if args.max_batch.is_none() && args.max_delay_us.is_none() && args.queue.is_none() {
        return None;
    }
    let defaults = Batching::default();
    Some(Batching {
        max_batch: args.max_batch.unwrap_or(defaults.max_batch),
        max_delay_us: args.max_delay_us.unwrap_or(defaults.max_delay_us),
        queue: args.queue.unwrap_or(defaults.queue),
    })
}

pub fn rollback(args: &RollbackArgs, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    let request = RollbackRequest { to: args.to };
    let entry = client.run(|c| c.rollback(&args.model, &request))?;
    print_entry(&entry, json)?;
    Ok(0)
}

fn print_entry(entry: &JournalEntry, json: bool) -> Result<(), CliError> {
    emit(json, entry, || {
        if !entry.action.is_switch() {
            let candidate = entry.candidate.map_or_else(String::new, |v| format!("v{v}"));
            let verb = match entry.action {
                Action::Canary => format!("canary of {candidate} started"),
                Action::Shadow => format!("shadow of {candidate} started"),
                _ => format!("{candidate} ended without promotion"),
            };
            return format!("{}: {verb}; v{} is in force ({})", entry.model, entry.to, entry.reason);
        }
        let was = entry
            .from
            .map_or_else(|| "nothing served before".to_owned(), |v| format!("was version {v}"));
        let gates = entry
            .gates
            .as_ref()
            .map_or(String::new(), |g| format!("\n{}", g.summary()));
        format!(
            "{}@{} is serving ({}; {was}); production → {}{gates}",
            entry.model, entry.to, entry.action, entry.to
        )
    })
}

pub fn deployments(args: &DeploymentsArgs, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    if args.history {
        let journal = client.run(|c| c.journal(None))?;
        emit(json, &journal, || journal_table(&journal))?;
        return Ok(0);
    }
    let list = client.run(|c| c.deployments())?;
    emit(json, &list, || deployments_table(&list))?;
    if !json {
        match (&list.inference_address, &list.inference_error) {
            (Some(a), _) => println!("inference (KServe v2): http://{a}/v2/models/<model>/infer"),
            (None, Some(e)) => eprintln!("inference is not available: {e}"),
            (None, None) => {}
        }
        for problem in &list.problems {
            eprintln!("problem: {problem}");
        }
    }
    Ok(0)
}

fn journal_table(journal: &Journal) -> String {
    let rows: Vec<Vec<String>> = journal
        .entries
        .iter()
        .map(|e| {
            let from = e.from.map_or("-".into(), |v| v.to_string());
            vec![
                e.time.clone(),
                e.model.to_string(),
                e.action.to_string(),
                from,
                e.to.to_string(),
            ]
        })
        .collect();
    table::render(&["TIME", "MODEL", "ACTION", "FROM", "TO"], &rows)
        .trim_end()
        .to_owned()
}

fn deployments_table(list: &Deployments) -> String {
    let ms = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    let rows: Vec<Vec<String>> = list
        .deployments
        .iter()
        .map(|d| {
            let s = &d.stats;
            vec![
                d.model.to_string(),
                d.version.to_string(),
                s.requests.to_string(),
                s.errors.to_string(),
                format!("{:.1}", s.req_per_s),
                ms(s.p50_ms),
                ms(s.p99_ms),
                s.queue_depth.to_string(),
                d.since.clone(),
            ]
        })
        .collect();
    let headers = [
        "MODEL", "VERSION", "REQUESTS", "ERRORS", "REQ/S", "P50 MS", "P99 MS", "QUEUE", "SINCE",
    ];
    table::render(&headers, &rows).trim_end().to_owned()
}

/// Sends one infer request and prints the outputs.
pub fn predict(args: &PredictArgs, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    let inference = client.client().inference()?;
    let (model, version) = match args.reference.split_once('@') {
        Some((m, v)) => (m, Some(v)),
        None => (args.reference.as_str(), None),
    };
    let input = read_input(&args.input)?;
    let response = infer(&client, &inference, model, version, input)?;
    emit(json, &response, || outputs_text(&response))?;
    Ok(0)
}

/// A full infer request is sent as it is; bare data is wrapped as the model's single input.
fn infer(
    client: &Blocking,
    inference: &Inference,
    model: &str,
    version: Option<&str>,
    input: Value,
) -> Result<InferResponse, CliError> {
    let request = if input.get("inputs").is_some() {
        serde_json::from_value(input).map_err(|e| CliError::bad_input(format!("not a KServe v2 infer request: {e}")))?
    } else {
        let metadata = client.block_on(inference.metadata(model, version))?;
        wrap(&metadata, input)?
    };
    Ok(client.block_on(inference.infer(model, version, &request))?)
}

fn outputs_text(response: &InferResponse) -> String {
    let lines: Vec<String> = response
        .outputs
        .iter()
        .map(|o| {
            let shape = serde_json::to_string(&o.shape).unwrap_or_default();
            format!("{} {} {shape}: {}", o.name, o.datatype, o.data)
        })
        .collect();
    lines.join("\n")
}

fn read_input(path: &Path) -> Result<Value, CliError> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::failure(format!("cannot read stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError {
            code: NOT_FOUND,
            message: format!("cannot read {}: {e}", path.display()),
        })?
    };
    serde_json::from_str(&text).map_err(|e| CliError::bad_input(format!("{} is not JSON: {e}", path.display())))
}

/// Wraps bare data as the model's single input, with the shape of its nesting (and a batch
/// of one when the data leaves the batch dimension out).
fn wrap(metadata: &ModelMetadata, data: Value) -> Result<InferRequest, CliError> {
    let input = metadata
        .inputs
        .first()
        .ok_or_else(|| CliError::failure(format!("model {} declares no inputs", metadata.name)))?;
    let mut shape = Vec::new();
    let mut level = &data;
    while let Value::Array(items) = level {
        shape.push(items.len() as u64);
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    if shape.len() + 1 == input.shape.len() {
        shape.insert(0, 1);
    }
    let input = InferInput {
        name: input.name.clone(),
        datatype: input.datatype.clone(),
        shape,
        data,
    };
    Ok(InferRequest {
        id: None,
        inputs: vec![input],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::api::kserve::TensorMetadata;

    fn metadata(shape: Vec<i64>) -> ModelMetadata {
        ModelMetadata {
            name: "m".into(),
            versions: vec!["1".into()],
            platform: "kiln".into(),
            inputs: vec![TensorMetadata {
                name: "input".into(),
                datatype: "FP32".into(),
                shape,
            }],
            outputs: Vec::new(),
        }
    }

    #[test]
    fn bare_data_takes_the_shape_of_its_nesting_and_a_batch_of_one() {
        let one_row = wrap(&metadata(vec![-1, 4]), serde_json::json!([0.5, 1, 2, 3]));
        let shapes = one_row.map(|r| (r.inputs[0].shape.clone(), r.inputs[0].name.clone()));
        assert_eq!(shapes.ok(), Some((vec![1, 4], "input".to_owned())));
        let batch = wrap(&metadata(vec![-1, 2]), serde_json::json!([[1, 2], [3, 4], [5, 6]]));
        assert_eq!(batch.ok().map(|r| r.inputs[0].shape.clone()), Some(vec![3, 2]));
        assert!(
            wrap(
                &ModelMetadata {
                    inputs: Vec::new(),
                    ..metadata(vec![])
                },
                Value::Null
            )
            .is_err()
        );
    }
}

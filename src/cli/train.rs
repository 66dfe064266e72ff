//! `kiln train` and `kiln eval`: build a typed [`JobRequest`], submit it to the daemon
//! (starting it when none answers), and follow the job to its end (`follow.rs`) or return at
//! once with `--detach`. Paths a job names are made absolute here: the daemon may run in
//! another directory.

use std::path::{Path, PathBuf};

use clap::Args;

use super::daemon::connect;
use super::error::{CliError, FAILURE};
use super::follow::follow;
use super::jobs::{exit_code, wait_for_end};
use super::output::emit;
use kiln_core::api::{EvalRequest, JobRequest, JobView, TrainRequest};
use kiln_core::client::Blocking;
use kiln_core::jobs::JobId;
use kiln_core::kinds::{Arch, DataSource, DeviceName, Optimizer, Schedule};
use kiln_core::names::{ModelRef, Name};

/// `kiln train` arguments.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Architecture: mlp, cnn, rnn or mf (not needed with --resume).
    #[arg(required_unless_present = "resume")]
    arch: Option<Arch>,
    /// Dataset: fashion-mnist, fortunes[:cat,…], ratings-synth or csv:<file>.
    #[arg(long, required_unless_present = "resume")]
    data: Option<DataSource>,
    /// Folder (or file) holding the dataset, when not the default.
    #[arg(long)]
    data_path: Option<PathBuf>,
    /// Epochs to train [default: 3; with --resume: the resumed job's].
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// adam, adamw or sgd (with momentum 0.9).
    #[arg(long, value_enum, default_value_t = Optimizer::Adam)]
    optimizer: Optimizer,
    /// Learning-rate schedule: cosine (decay to 0 over the run) or constant.
    #[arg(long, value_enum, default_value_t = Schedule::Cosine)]
    schedule: Schedule,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// cpu or cuda:N (default: cuda:0 when libtorch sees a GPU, else cpu).
    #[arg(long)]
    device: Option<DeviceName>,
    /// Use at most N training samples (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    /// Model to register the result under (default: <data>-<arch>).
    #[arg(long)]
    name: Option<Name>,
    /// Architecture config overrides as JSON, e.g. '{"hidden": 64}'.
    #[arg(long)]
    config: Option<String>,
    /// Fine-tune from a stored version (recorded as the parent).
    #[arg(long)]
    from: Option<ModelRef>,
    /// Continue an earlier job from its last checkpoint.
    #[arg(long, conflicts_with_all = ["arch", "data", "from"])]
    resume: Option<JobId>,
    /// Pin the dataset: the daemon records its files' digests when it accepts the job, and
    /// the job (and any resume of it) refuses to train if one changed.
    #[arg(long, conflicts_with = "resume")]
    pin: bool,
    #[command(flatten)]
    card: super::signing::CardArgs,
    /// Record no per-layer statistics (weight and gradient norms, update ratios, dead units)
    /// while training.
    #[arg(long)]
    no_layer_stats: bool,
    /// Print the job id and return at once; the daemon runs the job.
    #[arg(long)]
    detach: bool,
}

/// `kiln eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// `<model>[@<version|alias>]`.
    reference: ModelRef,
    /// Dataset to score on (its test split when it has one, else the validation split).
    #[arg(long)]
    data: DataSource,
    #[arg(long)]
    data_path: Option<PathBuf>,
    /// Score only the first N rows.
    #[arg(long)]
    limit: Option<usize>,
    /// Which split: `test`, or `val` (the validation split training scored each epoch on)
    /// [default: test when the dataset has one, else val].
    #[arg(long)]
    split: Option<kiln_core::jobs::EvalSplit>,
    /// Print the job id and return at once; the daemon runs the eval.
    #[arg(long)]
    detach: bool,
}

/// Epochs a training job runs unless told otherwise.
const DEFAULT_EPOCHS: usize = 3;

/// The working directory relative paths are anchored to.
fn cwd() -> Result<PathBuf, CliError> {
    std::env::current_dir().map_err(|e| CliError::failure(format!("cannot read the working directory: {e}")))
}

fn anchored(path: Option<&PathBuf>, base: &Path) -> Option<PathBuf> {
    path.map(|p| base.join(p))
}

/// The request `kiln train` submits: a fresh one from the arguments, or an earlier job's
/// again with `resume` set.
fn train_request(args: &TrainArgs, client: &Blocking) -> Result<TrainRequest, CliError> {
    match &args.resume {
        Some(old) => resumed(args, old, client),
        None => fresh(args),
    }
}

fn resumed(args: &TrainArgs, old: &JobId, client: &Blocking) -> Result<TrainRequest, CliError> {
    let JobRequest::Train(mut request) = client.run(|c| c.job(old))?.spec.request else {
        return Err(CliError::bad_input(format!(
            "job {old} is an evaluation; only training jobs resume"
        )));
    };
    request.resume = Some(old.clone());
    request.epochs = args.epochs.unwrap_or(request.epochs);
    request.layer_stats &= !args.no_layer_stats;
    Ok(request)
}

fn fresh(args: &TrainArgs) -> Result<TrainRequest, CliError> {
    let (Some(arch), Some(data)) = (args.arch, &args.data) else {
        return Err(CliError::bad_input(
            "name an architecture and --data, or --resume <job>",
        ));
    };
    let base = cwd()?;
    let config = match &args.config {
        Some(text) => {
            serde_json::from_str(text).map_err(|e| CliError::bad_input(format!("--config is not valid JSON: {e}")))?
        }
        None => serde_json::Value::Object(Default::default()),
    };
    let epochs = args.epochs.unwrap_or(DEFAULT_EPOCHS);
    if epochs == 0 || args.batch_size == 0 || args.lr.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
        return Err(CliError::bad_input(
            "--epochs and --batch-size must be at least 1 and --lr above 0",
        ));
    }
    let model = match &args.name {
        Some(name) => name.clone(),
        None => default_name(data, arch)?,
    };
    let mut request = TrainRequest::new(arch, data.clone().anchored(&base), model);
    request.config = config;
    request.data_path = anchored(args.data_path.as_ref(), &base);
    request.epochs = epochs;
    request.batch_size = args.batch_size;
    request.lr = args.lr;
    request.optimizer = args.optimizer;
    request.schedule = args.schedule;
    request.seed = args.seed;
    request.device = args.device;
    request.limit = args.limit;
    request.from = args.from.clone();
    request.pin = args.pin.then(Vec::new);
    request.layer_stats = !args.no_layer_stats;
    (request.license, request.card) = args.card.resolve()?;
    Ok(request)
}

/// The documented default model name, `<data>-<arch>`: `fashion-mnist-cnn`, `fortunes-rnn`,
/// or a CSV file's stem (`xor-mlp` for `csv:data/xor.csv`).
fn default_name(data: &DataSource, arch: Arch) -> Result<Name, CliError> {
    let base = match data {
        DataSource::Csv { .. } => data.stem(),
        other => other.kind().to_string(),
    };
    let cleaned: String = base
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    Name::new(&format!("{}-{arch}", cleaned.trim_matches('-')))
        .map_err(|e| CliError::bad_input(format!("{e}; pass --name")))
}

/// Submits `kiln train` to the daemon and, unless `--detach`, follows it to its end.
pub fn train(args: &TrainArgs, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    let request = train_request(args, &client)?;
    let summary = format!("{} on {} → model {}", request.arch, request.data, request.model);
    let request = JobRequest::Train(request);
    let view = client.run(|c| c.submit(&request))?;
    let id = &view.id;
    eprintln!("job {id} queued: {summary} (follow with `kiln jobs logs -f {id}`)");
    if args.detach {
        return print_detached(&view, json);
    }
    follow(&client, id, json)
}

/// Submits `kiln eval` as an eval job and, unless `--detach`, prints its report.
pub fn eval(args: &EvalArgs, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    let base = cwd()?;
    let request = EvalRequest {
        reference: args.reference.clone(),
        data: args.data.clone().anchored(&base),
        data_path: anchored(args.data_path.as_ref(), &base),
        limit: args.limit,
        split: args.split,
    };
    let request = JobRequest::Eval(request);
    let view = client.run(|c| c.submit(&request))?;
    eprintln!("eval job {} queued: {} on {}", view.id, args.reference, args.data);
    if args.detach {
        return print_detached(&view, json);
    }
    let view = wait_for_end(&client, &view.id, None)?;
    let code = exit_code(view.status.state);
    let Some(report) = &view.result else {
        let message = match view.status.message.as_str() {
            "" => "the eval job ended without a report",
            message => message,
        };
        let code = if code == 0 { FAILURE } else { code };
        return Err(CliError {
            code,
            message: message.to_owned(),
        });
    };
    emit(json, report, || report.render().trim_end().to_owned())?;
    Ok(code)
}

fn print_detached(view: &JobView, json: bool) -> Result<u8, CliError> {
    emit(json, view, || view.id.to_string())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        train: TrainArgs,
    }

    fn parse(args: &[&str]) -> Result<TrainRequest, String> {
        let cli =
            Cli::try_parse_from(std::iter::once("train").chain(args.iter().copied())).map_err(|e| e.to_string())?;
        fresh(&cli.train).map_err(|e| e.message)
    }

    #[test]
    fn flags_become_a_typed_request_with_the_documented_defaults() {
        let request = parse(&["cnn", "--data", "fashion-mnist"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.model.as_str(), "fashion-mnist-cnn");
        assert_eq!((request.epochs, request.batch_size, request.seed), (3, 64, 42));
        assert_eq!(
            (request.optimizer, request.schedule),
            (Optimizer::Adam, Schedule::Cosine)
        );
        assert!(request.layer_stats, "layer statistics are on by default");
        let quiet = parse(&["cnn", "--data", "fashion-mnist", "--no-layer-stats"]).unwrap_or_else(|e| panic!("{e}"));
        assert!(!quiet.layer_stats);
        let request = parse(&[
            "mlp",
            "--data",
            "csv:data/XOR.csv",
            "--optimizer",
            "sgd",
            "--schedule",
            "constant",
            "--device",
            "cuda:1",
            "--epochs",
            "5",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.model.as_str(), "xor-mlp");
        assert_eq!(
            (request.optimizer, request.device),
            (Optimizer::Sgd, Some(DeviceName::Cuda(1)))
        );
        let DataSource::Csv { path } = &request.data else {
            panic!("not a csv source: {:?}", request.data);
        };
        assert!(
            path.is_absolute() && path.ends_with("data/XOR.csv"),
            "{}",
            path.display()
        );
        assert_eq!(
            parse(&["rnn", "--data", "fortunes:art,science"]).map(|r| r.model.to_string()),
            Ok("fortunes-rnn".into())
        );
    }

    #[test]
    fn bad_flags_are_refused_before_anything_is_sent() {
        let unknown = parse(&["vit", "--data", "fashion-mnist"]).expect_err("unknown architecture");
        assert!(unknown.contains("possible values: mlp, cnn, rnn, mf"), "{unknown}");
        let data = parse(&["mlp", "--data", "mnist"]).expect_err("unknown dataset");
        assert!(data.contains("unknown dataset 'mnist'"), "{data}");
        let zero = parse(&["mlp", "--data", "fashion-mnist", "--epochs", "0"]).expect_err("no epochs");
        assert!(zero.contains("--epochs"), "{zero}");
        let config = parse(&["mlp", "--data", "fashion-mnist", "--config", "{"]).expect_err("bad JSON");
        assert!(config.contains("--config is not valid JSON"), "{config}");
    }
}

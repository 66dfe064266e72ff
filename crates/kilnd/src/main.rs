//! `kilnd`: kiln's daemon, its job workers and the engine. The only binary that links libtorch.

use kilnd::{alloc, daemon, evaluate, import, predict, worker};

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use kiln_core::registry::RegistryError;

/// kiln's daemon and engine: owns the registry, supervises training jobs, runs the compute.
#[derive(Debug, Parser)]
#[command(name = "kilnd", disable_version_flag = true)]
struct Cli {
    /// Print kiln's version, the libtorch version and the devices libtorch reports.
    #[arg(short = 'V', long)]
    version: bool,
    /// Print results as JSON.
    #[arg(long, global = true)]
    json: bool,
    /// Run the daemon in the foreground (what `kiln` starts detached, and systemd runs).
    #[arg(long)]
    foreground: bool,
    /// Control API port on 127.0.0.1 (0 picks a free one; the address is written to
    /// $KILN_HOME/daemon/address).
    #[arg(long, default_value_t = 7420, env = "KILN_CONTROL_PORT")]
    port: u16,
    /// Jobs run at once per device; the rest wait in the queue.
    #[arg(long, default_value_t = 1)]
    jobs_per_device: usize,
    #[command(flatten)]
    serving: daemon::ServingArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Import external weights as a new version of a model (what `kiln models import` runs).
    Import(import::ImportArgs),
    /// Run input rows through a stored version and print the outputs.
    Predict(predict::PredictArgs),
    /// Write a stored version's weights to a .safetensors or .bpk file.
    Export(predict::ExportArgs),
    /// Score a stored version on a dataset and attach the report (what `kiln eval` runs).
    Eval(evaluate::EvalArgs),
    /// Run one training job from its folder (started by `kiln train` or the daemon).
    Worker {
        /// The job id (its folder under $KILN_HOME/jobs).
        #[arg(long)]
        job: kiln_core::jobs::JobId,
    },
}

fn main() -> ExitCode {
    alloc::tune();
    let cli = Cli::parse();
    if cli.foreground && cli.command.is_none() {
        kiln_engine::device::rerun_with_serving_spin_count();
    }
    if cli.version {
        print_version(cli.json);
        return ExitCode::SUCCESS;
    }
    let result = match &cli.command {
        Some(Command::Import(args)) => run_import(args, cli.json),
        Some(Command::Predict(args)) => predict::predict(args).map(|doc| println!("{doc}")),
        Some(Command::Export(args)) => predict::export(args).map(|bytes| {
            let doc = serde_json::json!({ "path": args.out, "bytes": bytes });
            if cli.json {
                println!("{doc}")
            } else {
                println!("wrote {} ({bytes} bytes)", args.out.display())
            }
        }),
        Some(Command::Eval(args)) => evaluate::run(args).and_then(|report| {
            if cli.json {
                println!("{}", serde_json::to_string(&report)?)
            } else {
                print!("{}", report.render())
            }
            Ok(())
        }),
        Some(Command::Worker { job }) => {
            return match kiln_core::home::kiln_home()
                .map_err(anyhow::Error::from)
                .and_then(|home| worker::run(&home, job))
            {
                Ok(kiln_core::jobs::JobState::Succeeded) => ExitCode::SUCCESS,
                Ok(_) => ExitCode::from(1),
                Err(e) => {
                    eprintln!("kilnd worker: error: {e:#}");
                    ExitCode::from(1)
                }
            };
        }
        None if cli.foreground => kiln_core::home::kiln_home()
            .map_err(anyhow::Error::from)
            .and_then(|home| daemon::run(&home, cli.port, cli.jobs_per_device, &cli.serving)),
        None => {
            eprintln!("kilnd: nothing to do; run `kilnd --foreground` for the daemon, or see `kilnd --help`");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kilnd: error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn run_import(args: &import::ImportArgs, json: bool) -> anyhow::Result<()> {
    let home = kiln_core::home::kiln_home()?;
    let manifest = import::run(&home, args)?;
    if json {
        println!("{}", serde_json::to_string(&manifest)?);
    } else {
        println!("{}", manifest.imported_line());
    }
    Ok(())
}

/// The CLI's documented exit codes: 2 bad input, 3 not found, 4 corrupt data, 5 refused.
fn exit_code(error: &anyhow::Error) -> u8 {
    if error.downcast_ref::<import::BadInput>().is_some() {
        return 2;
    }
    match error.downcast_ref::<RegistryError>() {
        Some(RegistryError::InvalidName(_)) => 2,
        Some(e) if e.is_not_found() => 3,
        Some(e) if e.is_corruption() => 4,
        Some(RegistryError::AliasInUse { .. }) => 5,
        _ => 1,
    }
}

fn print_version(json: bool) {
    let info = kiln_engine::device::probe();
    if json {
        let doc = serde_json::json!({ "kiln": env!("CARGO_PKG_VERSION"), "libtorch": info });
        println!("{doc}");
        return;
    }
    println!("kilnd {}", env!("CARGO_PKG_VERSION"));
    println!(
        "libtorch {} ({})",
        info.version,
        info.loaded_from.as_deref().unwrap_or("not mapped")
    );
    let cudnn = if info.cudnn { ", cuDNN available" } else { "" };
    println!(
        "devices: cpu ({} threads), cuda: {} device(s){cudnn}",
        info.cpu_threads, info.cuda_devices
    );
}

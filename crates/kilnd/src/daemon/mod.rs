//! `kilnd --foreground`: the daemon. It owns `$KILN_HOME`, serves the control API on
//! 127.0.0.1 behind a bearer token, and supervises job workers (DESIGN §1, §4).
//!
//! ```text
//! $KILN_HOME/daemon/
//!   lock        held for the daemon's lifetime: one daemon per KILN_HOME
//!   token       bearer token for the control API (0600)
//!   address     host:port the control API listens on
//!   inference_address   host:port the inference API listens on
//!   pid         the daemon's pid
//! ```

mod api;
pub mod slurm;
pub mod studies;
pub mod supervisor;
pub mod telemetry;

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use axum::serve::ListenerExt;
use kiln_core::deploy::Batching;

use crate::events::Hub;
use crate::serve::{Limits, Server};
pub use studies::Studies;
pub use supervisor::Supervisor;

/// How often the supervisor looks at live jobs.
const TICK: Duration = Duration::from_millis(250);

/// The inference listener's settings (DESIGN §4–§6).
#[derive(Debug, clap::Args)]
pub struct ServingArgs {
    /// Where the inference API (KServe v2) listens. Any address but loopback needs an
    /// inference token.
    #[arg(long, default_value = "127.0.0.1:8000", env = "KILN_INFERENCE_BIND")]
    pub inference_bind: SocketAddr,
    /// File holding the inference bearer token; with one set, every inference route checks it.
    /// KILN_INFERENCE_TOKEN may hold the token itself.
    #[arg(long, env = "KILN_INFERENCE_TOKEN_FILE")]
    pub inference_token_file: Option<PathBuf>,
    /// Default most rows per forward pass (a deploy may override it).
    #[arg(long, default_value_t = 64)]
    pub max_batch: usize,
    /// Default longest wait for a fuller batch under load, in microseconds (a lone request
    /// never waits; 0: batch only what is queued).
    #[arg(long, default_value_t = 2000)]
    pub max_delay_us: u64,
    /// Default requests queued per deployment before answering 503.
    #[arg(long, default_value_t = 256)]
    pub queue: usize,
    /// Per-request timeout in milliseconds (504 after it).
    #[arg(long, default_value_t = 30_000, env = "KILN_INFER_TIMEOUT_MS")]
    pub infer_timeout_ms: u64,
    /// Largest request body in bytes (413 above it).
    #[arg(long, default_value_t = 16 << 20)]
    pub max_body_bytes: usize,
    /// Device for serving: cpu or cuda:N (default: cuda:0 when libtorch sees one).
    #[arg(long)]
    pub serve_device: Option<kiln_core::kinds::DeviceName>,
    /// Forward-pass instances per deployment on the CPU: a lead (all intra-op threads while it
    /// serves alone) plus single-threaded helpers that take requests while it is busy
    /// (default: 1 + the number of cores; 1: the lead alone). A GPU deployment always runs one.
    #[arg(long, env = "KILN_SERVE_INSTANCES", value_parser = clap::value_parser!(u16).range(1..))]
    pub serve_instances: Option<u16>,
    /// Deploy and restore only versions signed by a trusted key whose files still match
    /// (also `require_signed = true` under `[signing]` in config.toml).
    #[arg(long)]
    pub require_signed: bool,
}

impl ServingArgs {
    fn token(&self) -> anyhow::Result<Option<String>> {
        if let Ok(token) = std::env::var("KILN_INFERENCE_TOKEN")
            && !token.trim().is_empty()
        {
            return Ok(Some(token.trim().to_owned()));
        }
        match &self.inference_token_file {
            Some(path) => {
                let token = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the inference token file {}", path.display()))?;
                if token.trim().len() < 16 {
                    bail!(
                        "the inference token in {} is shorter than 16 characters",
                        path.display()
                    );
                }
                Ok(Some(token.trim().to_owned()))
            }
            None => Ok(None),
        }
    }
}

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub home: PathBuf,
    pub token: Arc<String>,
    pub supervisor: Arc<Supervisor>,
    pub studies: Arc<Studies>,
    pub hub: Hub,
    pub telemetry: Arc<telemetry::TelemetryStore>,
    pub server: Arc<Server>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(home: &Path, port: u16, jobs_per_device: usize, serving: &ServingArgs) -> anyhow::Result<()> {
    let inference_token = serving.token()?;
    if !serving.inference_bind.ip().is_loopback() && inference_token.is_none() {
        bail!(
            "refusing to serve inference on {} without a token: anyone who can reach it could use \
             your models. Set KILN_INFERENCE_TOKEN or --inference-token-file, or bind 127.0.0.1",
            serving.inference_bind
        );
    }
    let dir = home.join("daemon");
    kiln_core::fsx::create_dir_durably(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))?;
    if lock.try_lock().is_err() {
        let addr = std::fs::read_to_string(dir.join("address")).unwrap_or_default();
        return Err(anyhow!(
            "another kilnd already serves {} (at {}); stop it with `kiln daemon stop`",
            home.display(),
            addr.trim()
        ));
    }
    let token = load_or_create_token(&dir.join("token"))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (device, _) = crate::worker::pick_device(serving.serve_device)?;
    // Read libtorch's thread count before serving instances start setting their own.
    kiln_engine::device::intra_op_threads();
    let limits = Limits {
        timeout: Duration::from_millis(serving.infer_timeout_ms.max(1)),
        body_bytes: serving.max_body_bytes,
        cpu_instances: serving.serve_instances.map_or_else(
            || 1 + std::thread::available_parallelism().map_or(1, |n| n.get()),
            usize::from,
        ),
        batching: Batching {
            max_batch: serving.max_batch.max(1),
            max_delay_us: serving.max_delay_us,
            queue: serving.queue.max(1),
        },
    };
    let settings = kiln_core::settings::Settings::load().map_err(|e| anyhow!("{e}"))?;
    let require_signed = serving.require_signed || settings.signing.require_signed;
    if require_signed {
        eprintln!("kilnd: strict mode: only versions signed by a trusted key are deployed or restored");
    }
    let slurm = executor(&settings.daemon)?;
    let config = Config {
        signing: Arc::new(crate::signing::Verifier::new(require_signed)),
        port,
        token,
        jobs_per_device,
        inference_bind: serving.inference_bind,
        inference_token,
        device,
        limits,
        slurm,
    };
    runtime.block_on(serve(home, &dir, config))?;
    drop(lock);
    Ok(())
}

/// The sbatch options when jobs go to Slurm (`[daemon] executor`, which `KILN_EXECUTOR`
/// overrides), after checking Slurm's commands run here; `None` for local workers.
fn executor(daemon: &kiln_core::settings::Daemon) -> anyhow::Result<Option<slurm::Sbatch>> {
    let env = std::env::var(kiln_core::settings::EXECUTOR_ENV).ok();
    let daemon = daemon
        .clone()
        .with_env_override(env.as_deref())
        .map_err(|e| anyhow!("{e}"))?;
    match daemon.executor {
        kiln_core::settings::Executor::Local => Ok(None),
        kiln_core::settings::Executor::Slurm => {
            slurm::check_installed().map_err(|e| anyhow!("{e}"))?;
            eprintln!("kilnd: jobs run as Slurm batch jobs (sbatch); $KILN_HOME must be shared with the nodes");
            Ok(Some(slurm::Sbatch::from_settings(&daemon)))
        }
    }
}

struct Config {
    port: u16,
    token: String,
    jobs_per_device: usize,
    inference_bind: SocketAddr,
    inference_token: Option<String>,
    device: burn::tensor::Device,
    limits: Limits,
    signing: Arc<crate::signing::Verifier>,
    slurm: Option<slurm::Sbatch>,
}

async fn serve(home: &Path, dir: &Path, config: Config) -> anyhow::Result<()> {
    let port = config.port;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    let hub = Hub::new(1024);
    let supervisor = Arc::new(Supervisor::new(home, config.jobs_per_device, hub.clone(), config.slurm));
    let server = Arc::new(Server::new(
        home.to_owned(),
        config.device,
        config.limits,
        config.inference_token,
        hub.clone(),
        config.signing,
    ));
    start_inference(server.clone(), config.inference_bind, dir).await;
    let watched = supervisor.clone();
    let telemetry = telemetry::start(hub.clone(), move || watched.worker_pids());
    let studies = Arc::new(Studies::new(home, hub.clone(), telemetry.clone(), &supervisor));
    let state = AppState {
        home: home.to_owned(),
        token: Arc::new(config.token),
        supervisor: supervisor.clone(),
        studies: studies.clone(),
        hub,
        telemetry,
        server,
    };
    kiln_core::fsx::write_atomic(&dir.join("pid"), std::process::id().to_string().as_bytes())?;
    kiln_core::fsx::write_atomic(&dir.join("address"), addr.to_string().as_bytes())?;
    eprintln!(
        "kilnd {} listening on {addr} for {}",
        env!("CARGO_PKG_VERSION"),
        home.display()
    );
    // Every 250 ms while a job is queued or running or a study runs; asleep otherwise.
    let ticker = tokio::spawn(async move {
        loop {
            if !studies.busy() {
                supervisor.idle().await;
            }
            let (s, st) = (supervisor.clone(), studies.clone());
            let _ = tokio::task::spawn_blocking(move || tick(&s, &st)).await;
            tokio::time::sleep(TICK).await;
        }
    });
    let hub = state.hub.clone();
    let token_file = dir.join("token");
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move {
            shutdown_signal(token_file).await;
            hub.close();
        })
        .await?;
    ticker.abort();
    let _ = std::fs::remove_file(dir.join("address"));
    eprintln!("kilnd stopped; running workers keep going and are re-adopted by the next daemon");
    Ok(())
}

/// One pass: the supervisor reaps and starts jobs, the studies react to what ended; jobs a
/// study submitted start in the same pass, so a trial's slot is not left idle for a tick.
fn tick(supervisor: &Supervisor, studies: &Studies) {
    supervisor.tick();
    if studies.tick(supervisor) {
        supervisor.tick();
    }
}

/// Resolves on SIGTERM or SIGINT, or when `token` disappears: a removed `KILN_HOME` (a test's
/// temp dir, an operator's `rm -r`) leaves nothing to serve.
/// Binds the inference listener and restores deployments in the background. A port that is
/// taken is reported (daemon log, `GET /api/v1/deployments`), not fatal: jobs and the
/// registry still work.
async fn start_inference(server: Arc<Server>, bind: SocketAddr, dir: &Path) {
    let restoring = server.clone();
    tokio::task::spawn_blocking(move || restoring.restore());
    let listener = match tokio::net::TcpListener::bind(bind).await {
        Ok(listener) => listener,
        Err(e) => {
            let why =
                format!("cannot listen on {bind} for inference: {e}; set --inference-bind or KILN_INFERENCE_BIND");
            eprintln!("kilnd: {why}");
            *server.listener.lock().unwrap_or_else(|p| p.into_inner()) = Err(why);
            let _ = std::fs::remove_file(dir.join("inference_address"));
            return;
        }
    };
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let _ = kiln_core::fsx::write_atomic(&dir.join("inference_address"), address.as_bytes());
    eprintln!("kilnd: inference (KServe v2) on http://{address}");
    *server.listener.lock().unwrap_or_else(|p| p.into_inner()) = Ok(address);
    let router = crate::serve::http::router(server);
    // Answers go out as soon as they are written, not held back by Nagle's algorithm.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            eprintln!("kilnd: inference listener stopped: {e}");
        }
    });
}

async fn shutdown_signal(token: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    let home_gone = async {
        while token.exists() {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        eprintln!("kilnd: {} was removed; stopping", token.display());
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
        _ = home_gone => {}
    }
}

/// Reads the token file, or writes a fresh random token with mode 0600.
fn load_or_create_token(path: &Path) -> anyhow::Result<String> {
    if let Ok(token) = std::fs::read_to_string(path)
        && token.trim().len() >= 32
    {
        return Ok(token.trim().to_owned());
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let tmp = kiln_core::fsx::temp_path_for(path);
    {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
    }
    kiln_core::fsx::publish(&tmp, path)?;
    Ok(token)
}

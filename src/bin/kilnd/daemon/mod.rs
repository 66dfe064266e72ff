//! `kilnd --foreground`: the daemon. It owns `$KILN_HOME`, serves the control API on
//! 127.0.0.1 behind a bearer token, and supervises job workers (DESIGN §1, §4).
//!
//! ```text
//! $KILN_HOME/daemon/
//!   lock        held for the daemon's lifetime: one daemon per KILN_HOME
//!   token       bearer token for the control API (0600)
//!   address     host:port the control API listens on
//!   pid         the daemon's pid
//! ```

mod api;
mod supervisor;

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};

pub use supervisor::Supervisor;

/// Shared by every request handler.
#[derive(Clone)]
pub struct AppState {
    pub home: PathBuf,
    pub token: Arc<String>,
    pub supervisor: Arc<Supervisor>,
}

/// Runs the daemon until SIGTERM or SIGINT.
pub fn run(home: &Path, port: u16, jobs_per_device: usize) -> anyhow::Result<()> {
    let dir = home.join("daemon");
    kiln::fsx::create_dir_durably(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
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
    runtime.block_on(serve(home, &dir, port, token, jobs_per_device))?;
    drop(lock);
    Ok(())
}

async fn serve(home: &Path, dir: &Path, port: u16, token: String, jobs_per_device: usize) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{port}"))?;
    let addr = listener.local_addr()?;
    let supervisor = Arc::new(Supervisor::new(home, jobs_per_device));
    supervisor.adopt_existing();
    let state = AppState {
        home: home.to_owned(),
        token: Arc::new(token),
        supervisor: supervisor.clone(),
    };
    kiln::fsx::write_atomic(&dir.join("pid"), std::process::id().to_string().as_bytes())?;
    kiln::fsx::write_atomic(&dir.join("address"), addr.to_string().as_bytes())?;
    eprintln!(
        "kilnd {} listening on {addr} for {}",
        env!("CARGO_PKG_VERSION"),
        home.display()
    );
    let ticker = tokio::spawn(async move {
        let mut interval = tokio::time::interval(std::time::Duration::from_millis(250));
        loop {
            interval.tick().await;
            let s = supervisor.clone();
            let _ = tokio::task::spawn_blocking(move || s.tick()).await;
        }
    });
    axum::serve(listener, api::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await?;
    ticker.abort();
    let _ = std::fs::remove_file(dir.join("address"));
    eprintln!("kilnd stopped; running workers keep going and are re-adopted by the next daemon");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::select! {
        _ = ctrl_c => {}
        _ = async { if let Some(t) = term.as_mut() { t.recv().await; } else { std::future::pending::<()>().await } } => {}
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
    let tmp = kiln::fsx::temp_path_for(path);
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
    kiln::fsx::publish(&tmp, path)?;
    Ok(token)
}

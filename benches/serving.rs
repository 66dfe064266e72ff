//! Serving benchmark (DESIGN §7), one run on loopback, `cnn` (Fashion-MNIST shape) on CPU:
//!
//! * raw: the same version's in-process forward (`kilnd bench-serve`): one-row latency and
//!   rows/s at batch 64;
//! * kiln: `kilnd`'s KServe v2 endpoint with dynamic batching;
//! * FastAPI: FastAPI + uvicorn + PyTorch eager serving the identical architecture and
//!   weights (benches/serving_fastapi.py), installed from PyPI into its own venv under
//!   `~/.cache/kiln/bench-venv`.
//!
//! Each server gets 1, 8 and 64 concurrent clients (each sends one image per request and
//! waits for the answer) for a few seconds; req/s, p50 and p99 are printed, then the ratios
//! against the targets: ≥ 80% of raw throughput at 64 clients, ≥ 3× FastAPI, p50 overhead
//! over the raw forward ≤ 150 µs at 1 client.
//!
//! Run: `scripts/bench serving`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln::jobs::JobDir;
use serde_json::{Value, json};

mod common;

const SECONDS: f64 = 5.0;
const CLIENTS: [usize; 3] = [1, 8, 64];

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() {
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    // Both versions are trained before kilnd starts: its supervisor would otherwise also pick
    // up a job folder written here.
    train_version(home);
    train_version(home);
    let raw = kilnd(home, &["bench-serve", "bench@1", "--seconds", "4"]);
    let raw: Value = serde_json::from_slice(&raw).expect("bench-serve JSON");
    println!("raw in-process forward: {raw}");
    let weights = home.join("weights.safetensors");
    kilnd(home, &["export", "bench@1", "--out", weights.to_str().expect("utf8")]);

    let (kiln_server, kiln_url) = start_kiln(home);
    let kiln = measure("kiln", &kiln_url);
    time_rollback(home);
    drop(kiln_server);
    let fastapi = match start_fastapi(&weights) {
        Ok((server, url)) => {
            let figures = measure("fastapi", &url);
            drop(server);
            Some(figures)
        }
        Err(e) => {
            println!("FastAPI reference not run: {e}");
            None
        }
    };
    report(&raw, &kiln, fastapi.as_deref());
}

/// Deploys the second version, then times `rollback` back to the first (load, warm-up, switch).
fn time_rollback(home: &Path) {
    let client = kiln::client::Client::from_home(home).expect("client");
    client
        .post("/api/v1/deployments", &json!({ "model": "bench", "version": "2" }))
        .expect("deploy 2");
    let started = Instant::now();
    let entry = client
        .post("/api/v1/deployments/bench/rollback", &json!({}))
        .expect("rollback");
    assert_eq!(entry["to"], 1);
    println!(
        "rollback bench@2 → bench@1 (load, warm-up, switch): {:.0} ms (target <= 1000 ms)",
        started.elapsed().as_secs_f64() * 1e3
    );
}

/// A quick real training, so the version is a normal registry entry.
fn train_version(home: &Path) {
    let spec = common::cnn_job(1000, 1);
    let job = JobDir::create(home, &spec).expect("job");
    kilnd(home, &["worker", "--job", job.id.as_str()]);
}

fn kilnd(home: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_kilnd"))
        .env("KILN_HOME", home)
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .expect("run kilnd");
    assert!(out.status.success(), "kilnd {args:?} failed");
    out.stdout
}

fn start_kiln(home: &Path) -> (Server, String) {
    let server = Server(
        Command::new(env!("CARGO_BIN_EXE_kilnd"))
            .env("KILN_HOME", home)
            .env("KILN_INFERENCE_BIND", "127.0.0.1:0")
            .args(["--foreground", "--port", "0"])
            .stderr(Stdio::null())
            .spawn()
            .expect("start kilnd"),
    );
    let address = common::wait_for_file(&home.join("daemon/inference_address"));
    common::wait_for_file(&home.join("daemon/address"));
    let client = kiln::client::Client::from_home(home).expect("client");
    let mut deploy = json!({ "model": "bench", "version": "1" });
    // KILN_BENCH_MAX_DELAY_US tries a batching delay other than the default 0.
    if let Some(delay) = std::env::var("KILN_BENCH_MAX_DELAY_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        deploy["batching"] = json!({ "max_batch": 64, "max_delay_us": delay, "queue": 256 });
    }
    client.post("/api/v1/deployments", &deploy).expect("deploy");
    (server, format!("http://{}/v2/models/bench/infer", address.trim()))
}

fn start_fastapi(weights: &Path) -> Result<(Server, String), String> {
    let python = venv()?;
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/serving_fastapi.py");
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(weights)
        .arg(port.to_string())
        .arg(threads.to_string())
        .stdout(Stdio::null());
    if let Some(site) = torch_site() {
        cmd.env("PYTHONPATH", site);
    }
    let server = Server(cmd.spawn().map_err(|e| format!("cannot start python: {e}"))?);
    let ready = format!("http://127.0.0.1:{port}/v2/health/ready");
    let deadline = Instant::now() + Duration::from_secs(60);
    while ureq::get(&ready).call().is_err() {
        if Instant::now() > deadline {
            return Err("the FastAPI server did not come up in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((server, format!("http://127.0.0.1:{port}/v2/models/bench/infer")))
}

/// The venv with fastapi and uvicorn (created once; pip is idempotent).
fn venv() -> Result<PathBuf, String> {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .ok_or("no HOME")?;
    let venv = cache.join("kiln/bench-venv");
    let python = venv.join("bin/python");
    let run = |cmd: &mut Command| match cmd.status() {
        Ok(s) if s.success() => Ok(()),
        other => Err(format!("{cmd:?} failed: {other:?}")),
    };
    if !python.exists() {
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
    }
    let installed = Command::new(&python)
        .args(["-c", "import fastapi, uvicorn"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "fastapi", "uvicorn"]))?;
    }
    Ok(python)
}

/// Where scripts/setup put the torch wheel (`$LIBTORCH` is its `torch` folder).
fn torch_site() -> Option<PathBuf> {
    let libtorch = PathBuf::from(std::env::var_os("LIBTORCH")?);
    Some(libtorch.parent()?.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One figure set: concurrency, req/s, p50 µs, p99 µs.
type Figures = Vec<(usize, f64, f64, f64)>;

fn measure(name: &str, url: &str) -> Figures {
    let image: Vec<f32> = (0..784).map(|i| ((i * 37) % 255) as f32 / 255.0).collect();
    let body = json!({ "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": image }] })
        .to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    CLIENTS
        .iter()
        .map(|&clients| {
            let (rate, p50, p99) = runtime.block_on(load(url, &body, clients));
            println!("{name:>8} {clients:>3} clients: {rate:>8.0} req/s  p50 {p50:>7.0} us  p99 {p99:>7.0} us");
            (clients, rate, p50, p99)
        })
        .collect()
}

/// `clients` concurrent loops of request → answer for SECONDS (after a 1 s warm-up).
async fn load(url: &str, body: &str, clients: usize) -> (f64, f64, f64) {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()
        .expect("client");
    let body = body.to_owned();
    let warm_until = Instant::now() + Duration::from_secs(1);
    let until = warm_until + Duration::from_secs_f64(SECONDS);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.to_owned(), body.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    let response = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("request");
                    assert!(response.status().is_success(), "{url} answered {}", response.status());
                    let _ = response.bytes().await.expect("body");
                    if started > warm_until {
                        latencies.push(started.elapsed().as_secs_f64() * 1e6);
                    }
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    (latencies.len() as f64 / SECONDS, at(0.5), at(0.99))
}

fn report(raw: &Value, kiln: &Figures, fastapi: Option<&[(usize, f64, f64, f64)]>) {
    let raw_rows = raw["batch_64"]["rows_per_s"].as_f64().unwrap_or(f64::NAN);
    let raw_p50 = raw["batch_1"]["p50_us"].as_f64().unwrap_or(f64::NAN);
    let at = |figures: &[(usize, f64, f64, f64)], c: usize| figures.iter().find(|f| f.0 == c).copied();
    if let Some((_, rate, _, _)) = at(kiln, 64) {
        println!(
            "kiln at 64 clients: {rate:.0} req/s vs raw batched forward {raw_rows:.0} rows/s = {:.1}% (target >= 80%)",
            rate / raw_rows * 100.0
        );
    }
    if let Some((_, _, p50, _)) = at(kiln, 1) {
        println!(
            "kiln at 1 client: p50 {p50:.0} us vs raw one-row forward p50 {raw_p50:.0} us = {:.0} us overhead (target <= 150 us)",
            p50 - raw_p50
        );
    }
    for c in CLIENTS {
        if let (Some(k), Some(f)) = (at(kiln, c), fastapi.and_then(|f| at(f, c))) {
            println!(
                "kiln vs FastAPI+PyTorch at {c} clients: {:.0} vs {:.0} req/s = {:.2}x (target >= 3x at 64)",
                k.1,
                f.1,
                k.1 / f.1
            );
        }
    }
}

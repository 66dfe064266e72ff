//! Serving benchmark (DESIGN §7), on loopback, `cnn` (Fashion-MNIST shape) on CPU:
//!
//! * raw: the same version's forward, loaded in this process, libtorch defaults:
//!   one-row latency and rows/s at batch 64;
//! * kiln: `kilnd`'s KServe v2 endpoint with dynamic batching, the request data sent as JSON
//!   and, separately, with the binary tensor extension (Triton's clients' default);
//! * FastAPI: FastAPI + uvicorn + PyTorch eager serving the identical architecture and
//!   weights (benches/serving_fastapi.py) the way a careful Python engineer writes it: an
//!   `async def` handler reading the raw body with orjson (no pydantic model for the tensor),
//!   torch's threads as the raw forward's, uvicorn with uvloop and httptools. Installed from
//!   PyPI into its own venv under `~/.cache/kiln/bench-venv`.
//!
//! The machines this runs on are shared and their speed drifts within minutes, so raw, kiln
//! and FastAPI are measured in alternating rounds (raw, kiln JSON, kiln binary, FastAPI;
//! ROUNDS times, both servers up throughout) and each figure is the median of the per-round
//! ratios or differences. Targets: at 64 clients ≥ 80%
//! of raw throughput; at 1 client a p50 overhead over the raw forward ≤ 150 µs; ≥ 3× FastAPI.
//! At 1 client it also reports how much slower the raw forward is right after an idle gap, as a
//! server's calls are, than back to back (calls interleaved in one process): back-to-back
//! calls keep libtorch's OpenMP team and the caches warm. And it splits each request's round
//! trip, from the answer's `Server-Timing`, into the server's forward pass and everything else
//! (client, network, HTTP, parsing, queue, hand-offs): the forward pass's share drifts with the
//! machine, the rest is what kiln adds.
//!
//! Run: `scripts/bench serving`.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burn::tensor::Device;
use kiln_core::api::{Batching, DeployRequest, RollbackRequest};
use kiln_core::client::Blocking;
use kiln_core::deploy::CanarySpec;
use kiln_core::jobs::JobDir;
use kiln_core::names::{Name, Selector};
use kiln_core::registry::Registry;
use kiln_engine::data::SplitMix64;
use kiln_engine::loaded::LoadedModel;
use serde_json::json;
use tokio::net::TcpStream;

mod common;
use common::Process;

const ROUNDS: usize = 7;
/// Rounds of the canary figure, alternating which side goes first.
const CANARY_ROUNDS: usize = 12;
/// Seconds each round measures one side (after WARM_UP).
const SECONDS: f64 = 1.5;
const WARM_UP: Duration = Duration::from_millis(300);
const CLIENTS: [usize; 3] = [1, 8, 64];
/// Idle time before every other call of the second raw one-row measurement: about one request's
/// round trip outside the forward at 1 client.
const IDLE_GAP_US: u64 = 300;

/// req/s, p50 µs, p99 µs of one load run.
#[derive(Debug, Clone, Copy)]
struct Load {
    rate: f64,
    p50: f64,
    p99: f64,
    /// From the answers' `Server-Timing` (kiln only): p50 of the forward pass that answered
    /// each request, and p50 of each request's round trip less that forward pass.
    split: Option<Split>,
}

#[derive(Debug, Clone, Copy)]
struct Split {
    forward_p50: f64,
    rest_p50: f64,
}

fn main() {
    kilnd::alloc::tune();
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    // Both versions are trained before kilnd starts: its supervisor would otherwise also pick
    // up a job folder written here.
    train_version(home);
    train_version(home);
    let weights = home.join("weights.safetensors");
    kilnd(home, &["export", "bench@1", "--out", weights.to_str().expect("utf8")]);
    let image: Vec<f32> = (0..784).map(|i| ((i * 37) % 255) as f32 / 255.0).collect();

    let reference = Raw::load(home);
    let (kiln_server, url) = start_kiln(home);
    let json_body = Target::json(&url, &image);
    let binary_body = Target::binary(&url, &image);
    let fastapi = match start_fastapi(&weights) {
        Ok((server, url)) => Some((server, Target::json(&url, &image))),
        Err(e) => {
            println!("FastAPI reference not run: {e}");
            None
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // `scripts/bench serving -- canary`: only the canary figure.
    if std::env::args().any(|a| a == "canary") {
        canary_throughput(home, &runtime, &json_body);
        return;
    }
    for clients in CLIENTS {
        let batch = if clients == 1 { 1 } else { clients };
        let mut rounds = Vec::new();
        let (mut gapped, mut against_fastapi) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let (raw, _) = reference.measure(batch, 0);
            if clients == 1 {
                let (back_to_back, after_gap) = reference.measure(1, IDLE_GAP_US);
                gapped.push(after_gap.expect("a figure after the idle gap") - back_to_back.p50);
            }
            let json = runtime.block_on(load(&json_body, clients));
            let binary = runtime.block_on(load(&binary_body, clients));
            let reference = fastapi
                .as_ref()
                .map(|(_, target)| runtime.block_on(load(target, clients)));
            println!(
                "{clients:>2} clients, round {round}: raw batch {batch}: {:>5.0} rows/s p50 {:>6.0} us | kiln JSON {} | kiln binary {}{}",
                raw.rate,
                raw.p50,
                show(json),
                show(binary),
                reference.map(|f| format!(" | FastAPI {}", show(f))).unwrap_or_default()
            );
            if let Some(f) = reference {
                against_fastapi.push((json.rate / f.rate, f.rate));
            }
            rounds.push((raw, json, binary));
        }
        summarise(clients, &rounds);
        if !against_fastapi.is_empty() {
            let ratio = median(against_fastapi.iter().map(|r| r.0));
            println!(
                "{clients:>2} clients, kiln JSON vs async FastAPI+PyTorch ({:.0} req/s): {ratio:.2}x (median of per-round ratios; target >= 3x) {}",
                median(against_fastapi.iter().map(|r| r.1)),
                verdict(ratio >= 3.0)
            );
        }
        if clients == 1 {
            println!(
                "  the raw one-row forward itself is {:.0} us slower at p50 right after {IDLE_GAP_US} us idle, as a server's calls are, than back to back (calls interleaved in one process; median of rounds)",
                median(gapped.into_iter())
            );
        }
    }
    drop(fastapi);
    canary_throughput(home, &runtime, &json_body);
    time_rollback(home);
    drop(kiln_server);
}

/// Throughput at 64 clients while a canary sends 10% of the requests to bench@2, against
/// plain serving of bench@1 alone, in alternating rounds (target ≥ 0.97×). Both versions
/// are the same training, so the figure is what routing and a second deployment cost; each
/// round checks that bench@2 really answered its 10%.
fn canary_throughput(home: &Path, runtime: &tokio::runtime::Runtime, target: &Target) {
    let client = Blocking::new(home).expect("client");
    let model = bench_model();
    let mut ratios = Vec::new();
    for round in 0..CANARY_ROUNDS {
        // Plain first in even rounds, the canary first in odd ones, so neither side always
        // follows a deploy's gates (or the machine's drift).
        let plain_first = round % 2 == 0;
        let before = plain_first.then(|| runtime.block_on(load(target, 64)));
        let mut canary = deploy_request(2, None);
        canary.force = true;
        canary.canary = Some(CanarySpec {
            percent: 10.0,
            shadow: false,
            seconds: Some(3600),
            requests: None,
        });
        client.run(|c| c.deploy(&canary)).expect("start the canary");
        let during = runtime.block_on(load(target, 64));
        // The figure means something only if the candidate really answered its share.
        let status = client.run(|c| c.canaries()).expect("canary status");
        let share = status.canaries.first().map_or(0.0, |c| {
            c.candidate_requests as f64 * 100.0 / (c.candidate_requests + c.stable_requests).max(1) as f64
        });
        assert!(
            (8.0..=12.0).contains(&share),
            "bench@2 answered {share:.1}% of the requests, not 10%"
        );
        if let Err(e) = client.run(|c| c.abort_canary(&model)) {
            println!("  (the canary had already ended: {e})");
        }
        let plain = before.unwrap_or_else(|| runtime.block_on(load(target, 64)));
        println!(
            "64 clients, round {round}: bench@1 alone {:>6.0} req/s | during a 10% canary of bench@2 {:>6.0} req/s (bench@2 answered {share:.1}%)",
            plain.rate, during.rate
        );
        ratios.push(during.rate / plain.rate);
    }
    let ratio = median(ratios.into_iter());
    println!(
        "64 clients during a canary vs plain serving: {ratio:.3}x (median of per-round ratios; target >= 0.97x) {}",
        verdict(ratio >= 0.97)
    );
}

fn show(load: Load) -> String {
    format!(
        "{:>5.0} req/s p50 {:>6.0} us p99 {:>6.0} us",
        load.rate, load.p50, load.p99
    )
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    quantile(values.collect(), 0.5)
}

/// Medians over the rounds of kiln against raw, and the verdicts for the targets.
fn summarise(clients: usize, rounds: &[(Load, Load, Load)]) {
    for (name, pick) in [("JSON", 1), ("binary", 2)] {
        let kiln = |r: &(Load, Load, Load)| if pick == 1 { r.1 } else { r.2 };
        let rate = median(rounds.iter().map(|r| kiln(r).rate));
        let p50 = median(rounds.iter().map(|r| kiln(r).p50));
        match clients {
            1 => {
                let overhead = median(rounds.iter().map(|r| kiln(r).p50 - r.0.p50));
                println!(
                    "  1 client, kiln {name}: p50 {p50:.0} us, overhead over the raw one-row forward {overhead:.0} us (median of rounds; target <= 150 us) {}",
                    verdict(overhead <= 150.0)
                );
                let splits: Vec<(Split, f64)> = rounds.iter().filter_map(|r| Some((kiln(r).split?, r.0.p50))).collect();
                if !splits.is_empty() {
                    println!(
                        "    of which, per request (Server-Timing): the server's forward pass p50 {:.0} us, {:+.0} us against the raw back-to-back forward; everything else (client, network, HTTP, parsing, queue, hand-offs) p50 {:.0} us (medians of rounds)",
                        median(splits.iter().map(|(s, _)| s.forward_p50)),
                        median(splits.iter().map(|(s, raw)| s.forward_p50 - raw)),
                        median(splits.iter().map(|(s, _)| s.rest_p50)),
                    );
                }
            }
            64 => {
                let ratio = median(rounds.iter().map(|r| kiln(r).rate / r.0.rate));
                println!(
                    " 64 clients, kiln {name}: {rate:.0} req/s = {:.1}% of the raw batch-64 forward (median of rounds; target >= 80%) {}",
                    ratio * 100.0,
                    verdict(ratio >= 0.8)
                );
            }
            _ => println!("{clients:>2} clients, kiln {name}: {rate:.0} req/s, p50 {p50:.0} us (median of rounds)"),
        }
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "NOT MET" }
}

/// Deploys the second version, then times `rollback` back to the first (load, warm-up, switch).
fn time_rollback(home: &Path) {
    let client = Blocking::new(home).expect("client");
    let second = deploy_request(2, None);
    client.run(|c| c.deploy(&second)).expect("deploy 2");
    let (model, back) = (bench_model(), RollbackRequest::default());
    let started = Instant::now();
    let entry = client.run(|c| c.rollback(&model, &back)).expect("rollback");
    assert_eq!(entry.to, 1);
    println!(
        "rollback bench@2 → bench@1 (load, warm-up, switch): {:.0} ms (target <= 1000 ms)",
        started.elapsed().as_secs_f64() * 1e3
    );
}

fn bench_model() -> Name {
    "bench".parse().expect("name")
}

fn deploy_request(version: u32, batching: Option<Batching>) -> DeployRequest {
    DeployRequest {
        model: bench_model(),
        version: Some(Selector::Version(version)),
        batching,
        force: false,
        gate_samples: None,
        canary: None,
    }
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

fn start_kiln(home: &Path) -> (Process, String) {
    let server = common::start_kilnd(home);
    let address = common::wait_for_file(&home.join("daemon/inference_address"));
    let client = Blocking::new(home).expect("client");
    // KILN_BENCH_MAX_DELAY_US tries a batching delay other than the daemon's default.
    let batching = std::env::var("KILN_BENCH_MAX_DELAY_US")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(|max_delay_us| Batching {
            max_delay_us,
            ..Batching::default()
        });
    let first = deploy_request(1, batching);
    client.run(|c| c.deploy(&first)).expect("deploy");
    (server, format!("http://{}/v2/models/bench/infer", address.trim()))
}

fn start_fastapi(weights: &Path) -> Result<(Process, String), String> {
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
    let server = Process(cmd.spawn().map_err(|e| format!("cannot start python: {e}"))?);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !answers_ready(port) {
        if Instant::now() > deadline {
            return Err("the FastAPI server did not come up in 60 s".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((server, format!("http://127.0.0.1:{port}/v2/models/bench/infer")))
}

/// Whether `GET /v2/health/ready` on `port` answers 200.
fn answers_ready(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let request = "GET /v2/health/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    let mut answer = String::new();
    stream.write_all(request.as_bytes()).is_ok()
        && stream.read_to_string(&mut answer).is_ok()
        && answer.starts_with("HTTP/1.1 200")
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
        .args(["-c", "import fastapi, uvicorn, uvloop, httptools, orjson"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !installed {
        let packages = ["fastapi", "uvicorn[standard]", "orjson"];
        run(Command::new(&python)
            .args(["-m", "pip", "install", "--quiet"])
            .args(packages))?;
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

/// The reference: the same stored version's forward pass, loaded in this process with
/// libtorch's defaults, called back to back on a fixed row.
struct Raw {
    loaded: LoadedModel,
    row: Vec<f32>,
}

impl Raw {
    fn load(home: &Path) -> Self {
        let registry = Registry::open(home).expect("registry");
        let manifest = registry.version(&bench_model(), 1).expect("bench@1");
        let loaded = LoadedModel::from_registry(&registry, manifest, Device::libtorch()).expect("load bench@1");
        let width = loaded.row_len().expect("the cnn takes fixed-width rows");
        let mut rng = SplitMix64(1);
        let row = (0..width).map(|_| rng.uniform() as f32).collect();
        Self { loaded, row }
    }

    /// One round: rows/s (of forward time only) and one-call latency at `batch` back to back,
    /// after a quarter second of untimed warm-up; with `gap_us` > 0 also the p50 of calls
    /// interleaved with them that each follow `gap_us` idle, as a server's calls do.
    fn measure(&self, batch: usize, gap_us: u64) -> (Load, Option<f64>) {
        let width = self.row.len();
        let flat: Vec<f32> = self.row.iter().copied().cycle().take(width * batch).collect();
        let forward = || self.loaded.forward_flat(flat.clone(), batch, width).expect("forward");
        let warm = Instant::now();
        while warm.elapsed() < Duration::from_millis(250) {
            forward();
        }
        let (mut latencies, mut after_gap) = (Vec::new(), Vec::new());
        let gap = Duration::from_micros(gap_us);
        let started = Instant::now();
        while started.elapsed().as_secs_f64() < SECONDS {
            let idle = !gap.is_zero() && latencies.len() > after_gap.len();
            if idle {
                std::thread::sleep(gap);
            }
            let t = Instant::now();
            forward();
            let micros = t.elapsed().as_secs_f64() * 1e6;
            if idle { &mut after_gap } else { &mut latencies }.push(micros);
        }
        let seconds = latencies.iter().sum::<f64>() / 1e6;
        let load = Load {
            rate: (latencies.len() * batch) as f64 / seconds,
            p50: quantile(latencies.clone(), 0.5),
            p99: quantile(latencies, 0.99),
            split: None,
        };
        (load, (!after_gap.is_empty()).then(|| quantile(after_gap, 0.5)))
    }
}

/// Where to send, and the complete HTTP/1.1 request, built once.
struct Target {
    address: SocketAddr,
    request: Vec<u8>,
}

impl Target {
    /// One image as a KServe v2 JSON request.
    fn json(url: &str, image: &[f32]) -> Self {
        let body =
            json!({ "inputs": [{ "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32", "data": image }] });
        Self::new(url, "application/json", None, body.to_string().into_bytes())
    }

    /// The same image with the binary tensor extension: a JSON header, then the raw floats.
    fn binary(url: &str, image: &[f32]) -> Self {
        let header = json!({ "inputs": [{
            "name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
            "parameters": { "binary_data_size": image.len() * 4 },
        }] })
        .to_string();
        let mut body = header.clone().into_bytes();
        body.extend(image.iter().flat_map(|v| v.to_le_bytes()));
        Self::new(url, "application/octet-stream", Some(header.len()), body)
    }

    fn new(url: &str, content_type: &str, header_length: Option<usize>, body: Vec<u8>) -> Self {
        let rest = url.strip_prefix("http://").expect("http URL");
        let (host, path) = rest.split_at(rest.find('/').expect("URL path"));
        let address = host.parse().expect("URL host is ip:port");
        let extra = header_length
            .map(|n| format!("Inference-Header-Content-Length: {n}\r\n"))
            .unwrap_or_default();
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n{extra}Content-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(&body);
        Self { address, request }
    }
}

/// `clients` concurrent loops of request → answer for SECONDS (after WARM_UP).
///
/// The load generator is a minimal keep-alive HTTP/1.1 client (like wrk): it writes the same
/// prebuilt request and reads the answer's status and `Content-Length` body. It shares the
/// machine's cores with the server, so a heavier client (reqwest costs several times more CPU
/// per request) would show up as server slowness; both servers get the same client.
async fn load(target: &Target, clients: usize) -> Load {
    let warm_until = Instant::now() + WARM_UP;
    let until = warm_until + Duration::from_secs_f64(SECONDS);
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (address, request) = (target.address, target.request.clone());
            tokio::spawn(async move {
                let stream = TcpStream::connect(address).await.expect("connect");
                stream.set_nodelay(true).expect("nodelay");
                let mut buffer = Vec::with_capacity(64 * 1024);
                let mut latencies = Vec::new();
                while Instant::now() < until {
                    let started = Instant::now();
                    write_all(&stream, &request).await.expect("send");
                    let (status, forward) = read_response(&stream, &mut buffer).await.expect("answer");
                    assert_eq!(status, 200, "{address} answered {status}");
                    if started > warm_until {
                        latencies.push((started.elapsed().as_secs_f64() * 1e6, forward));
                    }
                }
                latencies
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.extend(task.await.expect("client task"));
    }
    let p50 = |values: Vec<f64>| quantile(values, 0.5);
    let split = answers.iter().all(|(_, forward)| forward.is_some()).then(|| Split {
        forward_p50: p50(answers.iter().filter_map(|a| a.1).collect()),
        rest_p50: p50(answers
            .iter()
            .filter_map(|(total, forward)| Some(total - (*forward)?))
            .collect()),
    });
    let latencies: Vec<f64> = answers.iter().map(|a| a.0).collect();
    Load {
        rate: latencies.len() as f64 / SECONDS,
        p50: quantile(latencies.clone(), 0.5),
        p99: quantile(latencies, 0.99),
        split,
    }
}

fn quantile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q) as usize]
}

async fn write_all(stream: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one response (status line, headers, `Content-Length` body); returns its status and
/// the forward pass's µs from its `Server-Timing`, when it has one.
async fn read_response(stream: &TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<(u16, Option<f64>)> {
    buffer.clear();
    let mut chunk = [0u8; 16 * 1024];
    let mut head_end = None;
    let mut length = 0;
    let mut forward = None;
    loop {
        if head_end.is_none()
            && let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n")
        {
            let head = std::str::from_utf8(&buffer[..end]).map_err(std::io::Error::other)?;
            let header = |wanted: &str| {
                head.lines().find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case(wanted).then(|| value.trim())
                })
            };
            length = header("content-length")
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| std::io::Error::other(format!("no Content-Length in {head:?}")))?;
            // `queue;dur=0.002, forward;dur=0.391` (milliseconds)
            forward = header("server-timing").and_then(|v| {
                let metric = v.split(',').find_map(|m| m.trim().strip_prefix("forward;"))?;
                let ms: f64 = metric.strip_prefix("dur=")?.parse().ok()?;
                Some(ms * 1e3)
            });
            head_end = Some(end + 4);
        }
        if let Some(end) = head_end
            && buffer.len() >= end + length
        {
            let status = buffer
                .get(9..12)
                .and_then(|s| std::str::from_utf8(s).ok()?.parse().ok());
            return status
                .map(|status| (status, forward))
                .ok_or_else(|| std::io::Error::other("malformed status line"));
        }
        stream.readable().await?;
        match stream.try_read(&mut chunk) {
            Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
}

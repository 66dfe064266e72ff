//! `kiln deploy`, `kiln rollback`, `kiln deployments` (over the control API) and
//! `kiln predict` (one request to the inference endpoint, KServe v2).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde_json::{Value, json};

use super::CliError;
use kiln_core::client::Client;
use kiln_core::home::kiln_home;
use kiln_core::names::{ModelRef, Name, Selector};

/// `kiln deploy` arguments.
#[derive(Debug, Args)]
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

fn failure(message: impl Into<String>) -> CliError {
    CliError {
        code: 1,
        message: message.into(),
    }
}

fn client() -> Result<(Client, PathBuf), CliError> {
    let home = kiln_home()?;
    super::daemon::ensure_running(&home)?;
    Ok((Client::from_home(&home)?, home))
}

pub fn deploy(args: &DeployArgs, json_out: bool) -> Result<u8, CliError> {
    let (client, _) = client()?;
    let mut body = json!({ "model": args.reference.model });
    match &args.reference.selector {
        Selector::Version(n) => body["version"] = json!(n.to_string()),
        Selector::Alias(alias) => body["version"] = json!(alias),
        Selector::Latest => {}
    }
    if args.max_batch.is_some() || args.max_delay_us.is_some() || args.queue.is_some() {
        body["batching"] = json!({
            "max_batch": args.max_batch.unwrap_or(64),
            "max_delay_us": args.max_delay_us.unwrap_or(2000),
            "queue": args.queue.unwrap_or(256),
        });
    }
    eprintln!("loading and warming up {}…", args.reference);
    let entry = client.post("/api/v1/deployments", &body)?;
    print_entry(&entry, json_out);
    Ok(0)
}

pub fn rollback(args: &RollbackArgs, json_out: bool) -> Result<u8, CliError> {
    let (client, _) = client()?;
    let body = args.to.map_or_else(|| json!({}), |to| json!({ "to": to }));
    let entry = client.post(&format!("/api/v1/deployments/{}/rollback", args.model), &body)?;
    print_entry(&entry, json_out);
    Ok(0)
}

fn print_entry(entry: &Value, json_out: bool) {
    if json_out {
        println!("{entry}");
        return;
    }
    let was = entry["from"]
        .as_u64()
        .map_or_else(|| "nothing served before".to_owned(), |v| format!("was version {v}"));
    println!(
        "{}@{} is serving ({}; {was}); production → {}",
        entry["model"].as_str().unwrap_or("?"),
        entry["to"],
        entry["action"].as_str().unwrap_or("?"),
        entry["to"]
    );
}

pub fn deployments(args: &DeploymentsArgs, json_out: bool) -> Result<u8, CliError> {
    let (client, _) = client()?;
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
    if args.history {
        let journal = client.get("/api/v1/deployments/journal")?;
        if json_out {
            println!("{journal}");
            return Ok(0);
        }
        let rows: Vec<Vec<String>> = journal["entries"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                let from = e["from"].as_u64().map_or("-".into(), |v| v.to_string());
                vec![
                    text(&e["time"]),
                    text(&e["model"]),
                    text(&e["action"]),
                    from,
                    e["to"].to_string(),
                ]
            })
            .collect();
        println!(
            "{}",
            super::table::render(&["TIME", "MODEL", "ACTION", "FROM", "TO"], &rows).trim_end()
        );
        return Ok(0);
    }
    let list = client.get("/api/v1/deployments")?;
    if json_out {
        println!("{list}");
        return Ok(0);
    }
    let ms = |v: &Value| v.as_f64().map_or("-".into(), |v| format!("{v:.2}"));
    let rows: Vec<Vec<String>> = list["deployments"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            let s = &d["stats"];
            vec![
                text(&d["model"]),
                d["version"].to_string(),
                s["requests"].to_string(),
                s["errors"].to_string(),
                format!("{:.1}", s["req_per_s"].as_f64().unwrap_or(0.0)),
                ms(&s["p50_ms"]),
                ms(&s["p99_ms"]),
                s["queue_depth"].to_string(),
                text(&d["since"]),
            ]
        })
        .collect();
    let headers = [
        "MODEL", "VERSION", "REQUESTS", "ERRORS", "REQ/S", "P50 MS", "P99 MS", "QUEUE", "SINCE",
    ];
    println!("{}", super::table::render(&headers, &rows).trim_end());
    match (&list["inference_address"], &list["inference_error"]) {
        (Value::String(a), _) => println!("inference (KServe v2): http://{a}/v2/models/<model>/infer"),
        (_, Value::String(e)) => eprintln!("inference is not available: {e}"),
        _ => {}
    }
    for problem in list["problems"].as_array().into_iter().flatten() {
        eprintln!("problem: {}", text(problem));
    }
    Ok(0)
}

/// Sends one infer request and prints the outputs.
pub fn predict(args: &PredictArgs, json_out: bool) -> Result<u8, CliError> {
    let home = kiln_home()?;
    super::daemon::ensure_running(&home)?;
    let base = inference_base(&home)?;
    let (model, version) = match args.reference.split_once('@') {
        Some((m, v)) => (m.to_owned(), Some(v.to_owned())),
        None => (args.reference.clone(), None),
    };
    let path = match &version {
        Some(v) => format!("{base}/v2/models/{model}/versions/{v}"),
        None => format!("{base}/v2/models/{model}"),
    };
    let input = read_input(&args.input)?;
    let request = if input.get("inputs").is_some() {
        input
    } else {
        let metadata = call(ureq_agent().get(&path))?;
        wrap(&metadata, input)?
    };
    let response = call_with_body(ureq_agent().post(format!("{path}/infer")), &request)?;
    if json_out {
        println!("{response}");
    } else {
        for output in response["outputs"].as_array().into_iter().flatten() {
            println!(
                "{} {} {}: {}",
                output["name"].as_str().unwrap_or("?"),
                output["datatype"].as_str().unwrap_or("?"),
                output["shape"],
                output["data"]
            );
        }
    }
    Ok(0)
}

fn inference_base(home: &Path) -> Result<String, CliError> {
    let address = std::fs::read_to_string(home.join("daemon").join("inference_address"))
        .map_err(|_| failure("kilnd is not serving inference (see `kiln deployments` for why)"))?;
    Ok(format!("http://{}", address.trim()))
}

fn read_input(path: &Path) -> Result<Value, CliError> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| failure(format!("cannot read stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path).map_err(|e| CliError {
            code: 3,
            message: format!("cannot read {}: {e}", path.display()),
        })?
    };
    serde_json::from_str(&text).map_err(|e| CliError {
        code: 2,
        message: format!("{} is not JSON: {e}", path.display()),
    })
}

/// Wraps bare data as the model's single input, with the shape of its nesting.
fn wrap(metadata: &Value, data: Value) -> Result<Value, CliError> {
    let input = &metadata["inputs"][0];
    let mut shape = Vec::new();
    let mut level = &data;
    while let Value::Array(items) = level {
        shape.push(items.len());
        match items.first() {
            Some(first) => level = first,
            None => break,
        }
    }
    let declared = input["shape"].as_array().map_or(0, Vec::len);
    if shape.len() + 1 == declared {
        shape.insert(0, 1);
    }
    Ok(json!({
        "inputs": [{ "name": input["name"], "datatype": input["datatype"], "shape": shape, "data": data }]
    }))
}

fn ureq_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn with_token<B>(request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
    match std::env::var("KILN_INFERENCE_TOKEN") {
        Ok(token) if !token.trim().is_empty() => request.header("Authorization", format!("Bearer {}", token.trim())),
        _ => request,
    }
}

fn call(request: ureq::RequestBuilder<ureq::typestate::WithoutBody>) -> Result<Value, CliError> {
    answer(with_token(request).call())
}

fn call_with_body(request: ureq::RequestBuilder<ureq::typestate::WithBody>, body: &Value) -> Result<Value, CliError> {
    answer(
        with_token(request)
            .header("Content-Type", "application/json")
            .send(body.to_string()),
    )
}

fn answer(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, CliError> {
    let mut response = result.map_err(|e| failure(format!("cannot reach the inference endpoint: {e}")))?;
    let status = response.status().as_u16();
    let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let message = body["error"].as_str().unwrap_or("no error message").to_owned();
    Err(CliError {
        code: match status {
            404 => 3,
            400 | 413 | 422 => 2,
            _ => 1,
        },
        message: format!("inference answered {status}: {message}"),
    })
}

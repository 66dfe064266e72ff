//! The console's async client for kilnd's control API and event stream.
//!
//! Requests run as tokio tasks and report back as [`DaemonMsg`]s on the UI channel; nothing
//! here touches UI state. The daemon is found through `$KILN_HOME/daemon/{address,token}`,
//! re-read for every request so a restarted daemon (new port, new token) is picked up.
//! The event stream reconnects with exponential backoff; while kilnd has no
//! `/api/v1/events` route the client falls back to a 2 s polling tick.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::api::{Deployments, EvalReport, JobList, JobView, Journal, JournalEntry, LogChunk, MetricsChunk};
use super::event::{DaemonMsg, Event};
use super::sse::{SseEvent, SseParser};

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("kilnd is not running for {0} (start it with `kiln daemon start`)")]
    NotRunning(String),
    #[error("kilnd answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot talk to kilnd: {0}")]
    Transport(String),
    #[error("kilnd sent something unexpected: {0}")]
    Decode(String),
}

impl ApiError {
    /// A 404: the route (or the thing) does not exist, e.g. on an older daemon.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Http { status: 404, .. })
    }
}

/// Something the console asks of the daemon.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Models,
    Model(String),
    Version(String, u32),
    /// An evaluation report blob, by digest.
    Report(String),
    Jobs,
    Metrics {
        job: String,
        since: u64,
    },
    Log {
        job: String,
        since: u64,
    },
    Telemetry,
    Deployments,
    Journal,
    SubmitJob(Value),
    CancelJob(String),
    Deploy {
        model: String,
        version: u32,
    },
    Rollback {
        model: String,
        to: Option<u32>,
    },
    Try {
        model: String,
        index: u64,
    },
    DeleteVersion {
        model: String,
        version: u32,
    },
}

/// Handle on the daemon of one `KILN_HOME`; cheap to clone.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    http: reqwest::Client,
    home: PathBuf,
}

struct Endpoint {
    base: String,
    token: String,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_EVERY: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an open event stream is cross-checked against `/api/v1/health`.
const HEALTH_EVERY: Duration = Duration::from_secs(10);
/// Longest silence tolerated on the event stream (two missed keep-alives, plus slack).
const STREAM_SILENCE: Duration = Duration::from_secs(35);

impl DaemonClient {
    /// A client for the daemon under `home`; contacts nothing yet.
    pub fn new(home: PathBuf) -> Self {
        Self {
            http: reqwest::Client::new(),
            home,
        }
    }

    fn endpoint(&self) -> Result<Endpoint, ApiError> {
        let dir = self.home.join("daemon");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).map(|s| s.trim().to_owned());
        match (read("address"), read("token")) {
            (Ok(address), Ok(token)) if !address.is_empty() => Ok(Endpoint {
                base: format!("http://{address}"),
                token,
            }),
            _ => Err(ApiError::NotRunning(self.home.display().to_string())),
        }
    }

    async fn call<T: DeserializeOwned>(&self, path: &str, body: Option<&Value>) -> Result<T, ApiError> {
        let method = if body.is_some() { Method::POST } else { Method::GET };
        self.send(method, path, body).await
    }

    async fn send<T: DeserializeOwned>(&self, method: Method, path: &str, body: Option<&Value>) -> Result<T, ApiError> {
        let endpoint = self.endpoint()?;
        let url = format!("{}{path}", endpoint.base);
        let builder = match body {
            Some(body) => self.http.request(method, url).json(body),
            None => self.http.request(method, url),
        };
        let response = builder
            .bearer_auth(&endpoint.token)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(transport)?;
        if !(200..300).contains(&status) {
            let message = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| "no error message".to_owned());
            return Err(ApiError::Http { status, message });
        }
        serde_json::from_slice(&bytes).map_err(|e| ApiError::Decode(format!("{path}: {e}")))
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(path, None).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Value) -> Result<T, ApiError> {
        self.call(path, Some(body)).await
    }

    /// Runs one request in the background; its answer arrives on `tx`.
    pub fn spawn(&self, request: Request, tx: &UnboundedSender<Event>) {
        let client = self.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let msg = match client.execute(&request).await {
                Ok(msg) => msg,
                Err(error) => DaemonMsg::Failed { request, error },
            };
            let _ = tx.send(msg.into());
        });
    }

    /// Performs `request` and decodes its answer.
    pub async fn execute(&self, request: &Request) -> Result<DaemonMsg, ApiError> {
        Ok(match request {
            Request::Models => DaemonMsg::Models(self.get("/api/v1/models").await?),
            Request::Model(m) => {
                let doc: Value = self.get(&format!("/api/v1/models/{m}")).await?;
                DaemonMsg::ModelDetail(decode(doc["model"].clone())?)
            }
            Request::Version(m, v) => DaemonMsg::Version(self.get(&format!("/api/v1/models/{m}/versions/{v}")).await?),
            Request::Report(digest) => DaemonMsg::Report {
                digest: digest.clone(),
                report: self.get::<EvalReport>(&format!("/api/v1/blobs/{digest}")).await?,
            },
            Request::Jobs => DaemonMsg::Jobs(self.get::<JobList>("/api/v1/jobs").await?.jobs),
            Request::Metrics { job, since } => DaemonMsg::Metrics {
                job: job.clone(),
                chunk: self.get(&format!("/api/v1/jobs/{job}/metrics?since={since}")).await?,
            },
            Request::Log { job, since } => DaemonMsg::Log {
                job: job.clone(),
                chunk: self
                    .get::<LogChunk>(&format!("/api/v1/jobs/{job}/log?since={since}"))
                    .await?,
            },
            Request::Telemetry => DaemonMsg::Telemetry(self.get("/api/v1/telemetry").await?),
            Request::Deployments => DaemonMsg::Deployments(self.get::<Deployments>("/api/v1/deployments").await?),
            Request::Journal => DaemonMsg::Journal(
                self.get::<Journal>("/api/v1/deployments/journal?limit=50")
                    .await?
                    .entries,
            ),
            _ => self.execute_mutation(request).await?,
        })
    }

    async fn execute_mutation(&self, request: &Request) -> Result<DaemonMsg, ApiError> {
        Ok(match request {
            Request::SubmitJob(body) => DaemonMsg::Submitted(self.post("/api/v1/jobs", body).await?),
            Request::CancelJob(id) => DaemonMsg::Job(
                self.post::<JobView>(&format!("/api/v1/jobs/{id}/cancel"), &json!({}))
                    .await?,
            ),
            Request::Deploy { model, version } => DaemonMsg::JournalEntry(
                self.post::<JournalEntry>(
                    "/api/v1/deployments",
                    &json!({ "model": model, "version": version.to_string() }),
                )
                .await?,
            ),
            Request::Rollback { model, to } => {
                let body = match to {
                    Some(v) => json!({ "to": v }),
                    None => json!({}),
                };
                DaemonMsg::JournalEntry(
                    self.post(&format!("/api/v1/deployments/{model}/rollback"), &body)
                        .await?,
                )
            }
            Request::DeleteVersion { model, version } => {
                let path = format!("/api/v1/models/{model}/versions/{version}?force=true");
                self.send::<Value>(Method::DELETE, &path, None).await?;
                DaemonMsg::RegistryChanged
            }
            Request::Try { model, index } => DaemonMsg::Tried {
                model: model.clone(),
                result: self
                    .post(&format!("/api/v1/deployments/{model}/try"), &json!({ "index": index }))
                    .await?,
            },
            other => return Err(ApiError::Decode(format!("{other:?} is not a mutation"))),
        })
    }

    /// Keeps the event stream open for the life of the console, reconnecting with backoff.
    pub fn spawn_events(&self, tx: UnboundedSender<Event>) {
        let client = self.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                let started = Instant::now();
                let reason = match client.stream_events(&tx).await {
                    Ok(()) => "the event stream ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                if tx.send(DaemonMsg::Disconnected(reason).into()).is_err() {
                    return;
                }
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_millis(250);
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        });
    }

    async fn stream_events(&self, tx: &UnboundedSender<Event>) -> Result<(), ApiError> {
        let endpoint = self.endpoint()?;
        let mut response = self
            .http
            .get(format!("{}/api/v1/events", endpoint.base))
            .bearer_auth(&endpoint.token)
            .header("Accept", "text/event-stream")
            .send()
            .await
            .map_err(transport)?;
        match response.status().as_u16() {
            404 => return self.poll(tx).await,
            200..300 => {}
            status => {
                return Err(ApiError::Http {
                    status,
                    message: "event stream refused".into(),
                });
            }
        }
        send(tx, DaemonMsg::Connected { live: true })?;
        let mut parser = SseParser::default();
        let mut health = tokio::time::interval(HEALTH_EVERY);
        health.tick().await;
        loop {
            // kilnd sends a keep-alive comment every 15 s; silence for longer means the
            // connection is dead even if the socket has not noticed yet. A daemon that is
            // shutting down may keep the stream open while its control API is gone: the
            // health probe notices that.
            let chunk = tokio::select! {
                chunk = tokio::time::timeout(STREAM_SILENCE, response.chunk()) => chunk
                    .map_err(|_| ApiError::Transport(format!("no word from kilnd for {}s", STREAM_SILENCE.as_secs())))?
                    .map_err(transport)?,
                _ = health.tick() => {
                    self.get::<Value>("/api/v1/health").await?;
                    continue;
                }
            };
            let Some(chunk) = chunk else { break };
            for event in parser.push(&chunk) {
                if let Some(msg) = decode_event(&event) {
                    send(tx, msg)?;
                }
            }
        }
        Ok(())
    }

    /// No event stream on this kilnd: tick every [`POLL_EVERY`] while its health answers.
    async fn poll(&self, tx: &UnboundedSender<Event>) -> Result<(), ApiError> {
        send(tx, DaemonMsg::Connected { live: false })?;
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            self.get::<Value>("/api/v1/health").await?;
            send(tx, DaemonMsg::PollTick)?;
        }
    }
}

fn send(tx: &UnboundedSender<Event>, msg: DaemonMsg) -> Result<(), ApiError> {
    tx.send(msg.into())
        .map_err(|_| ApiError::Transport("the console is closing".into()))
}

fn transport(e: reqwest::Error) -> ApiError {
    if e.is_connect() {
        ApiError::Transport(format!("connection refused ({e})"))
    } else {
        ApiError::Transport(e.to_string())
    }
}

fn decode<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    serde_json::from_value(value).map_err(|e| ApiError::Decode(e.to_string()))
}

/// Turns one SSE event into a message; unknown or undecodable events are dropped.
pub fn decode_event(event: &SseEvent) -> Option<DaemonMsg> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).ok();
    Some(match event.event.as_str() {
        "job" => DaemonMsg::Job(decode(parse(&event.data)?).ok()?),
        "metrics" => {
            let chunk: MetricsChunk = decode(parse(&event.data)?).ok()?;
            DaemonMsg::Metrics {
                job: chunk.job.clone()?,
                chunk,
            }
        }
        "registry" => DaemonMsg::RegistryChanged,
        "telemetry" => DaemonMsg::Sample(decode(parse(&event.data)?).ok()?),
        "deployment" => DaemonMsg::JournalEntry(decode(parse(&event.data)?).ok()?),
        "lagged" => DaemonMsg::Lagged,
        _ => return None,
    })
}

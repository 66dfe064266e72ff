//! The one client of kilnd's control API (reqwest, async), used by the console and — through
//! [`Blocking`], on a small current-thread runtime — by the CLI. Every call decodes into the
//! [`crate::api`] types the daemon encodes from.
//!
//! The daemon is found through `$KILN_HOME/daemon/{address,token}`, re-read for every request,
//! so a restarted daemon (new port, new token) is picked up without a new client; or, for a
//! context ([`crate::context`]), through that context's ssh tunnel, which reconnects by itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use reqwest::Method;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::{
    AliasRemoved, AliasRequest, AliasSet, Canaries, DeployRequest, Deployments, EpochList, ErrorBody, Event,
    GateRequest, GateResult, Health, ImportRequest, InspectQuery, Inspection, JobList, JobRequest, JobView, Journal,
    JournalEntry, JournalQuery, LogChunk, MetricsChunk, ModelList, ModelView, PromoteRequest, RemoveQuery,
    RollbackRequest, SampleDetail, SignRequest, SignatureView, Signatures, Since, StudyCreate, StudyList, StudyView,
    Telemetry, TelemetryQuery, TryRequest, TryResult, VerifyReport, VersionFilter, VersionList, VersionManifest,
    VersionRemoved, VersionView, kserve,
};
use crate::context::Session;
use crate::jobs::JobId;
use crate::names::{Digest, Name, Selector};
use crate::registry::EvalReport;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ClientError {
    #[error("no kilnd answers for {0}; start it with `kiln daemon start`")]
    NotRunning(String),
    /// A context's tunnel is down (the message says why; it is reconnecting).
    #[error("{0}")]
    Tunnel(String),
    #[error("kilnd answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot talk to kilnd: {0}")]
    Transport(String),
    #[error("kilnd sent something unexpected: {0}")]
    Decode(String),
}

impl ClientError {
    /// A 404: the thing (or, on an older daemon, the route) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Http { status: 404, .. })
    }

    /// No daemon answered at all (nothing listening, or no address on record).
    pub fn is_unreachable(&self) -> bool {
        match self {
            Self::NotRunning(_) | Self::Tunnel(_) => true,
            Self::Transport(reason) => reason.starts_with(CONNECTION_REFUSED),
            _ => false,
        }
    }
}

const CONNECTION_REFUSED: &str = "connection refused";
/// Long enough for a deploy's load and warm-up, or an import's forward pass.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Weights can be large; a blob may take longer than a JSON answer.
const BLOB_TIMEOUT: Duration = Duration::from_secs(600);

/// Where one daemon listens and the token it wants.
#[derive(Debug, Clone)]
struct Endpoint {
    base: String,
    token: String,
}

/// Which daemon a client talks to.
#[derive(Debug, Clone)]
enum Daemon {
    /// The one of this `KILN_HOME`.
    Local(PathBuf),
    /// A context's, through its tunnel.
    Remote(Arc<Session>),
}

/// A client of the daemon that owns one `KILN_HOME`, here or on a context's box. Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    daemon: Daemon,
}

impl Client {
    /// A client for the daemon of `home`; contacts nothing yet.
    pub fn new(home: &Path) -> Self {
        Self {
            http: reqwest::Client::new(),
            daemon: Daemon::Local(home.to_owned()),
        }
    }

    /// A client for a context's daemon, through its session's tunnel.
    pub fn remote(session: Arc<Session>) -> Self {
        Self {
            http: reqwest::Client::new(),
            daemon: Daemon::Remote(session),
        }
    }

    /// The local `KILN_HOME` this client talks about (`None` for a context's).
    pub fn home(&self) -> Option<&Path> {
        match &self.daemon {
            Daemon::Local(home) => Some(home),
            Daemon::Remote(_) => None,
        }
    }

    /// The context's session, for a context's client.
    pub fn session(&self) -> Option<&Arc<Session>> {
        match &self.daemon {
            Daemon::Local(_) => None,
            Daemon::Remote(session) => Some(session),
        }
    }

    /// The inference endpoint of the same daemon.
    pub fn inference(&self) -> Result<Inference, InferenceError> {
        match &self.daemon {
            Daemon::Local(home) => Inference::new(home),
            Daemon::Remote(session) => {
                let address = session.inference().ok_or(InferenceError::NotServing)?;
                Ok(Inference::at(&address.to_string()))
            }
        }
    }

    fn endpoint(&self) -> Result<Endpoint, ClientError> {
        let home = match &self.daemon {
            Daemon::Local(home) => home,
            Daemon::Remote(session) => {
                let route = session.route().map_err(ClientError::Tunnel)?;
                return Ok(Endpoint {
                    base: format!("http://{}{}", route.control, crate::api::PREFIX),
                    token: route.token,
                });
            }
        };
        let dir = home.join("daemon");
        let read = |name: &str| std::fs::read_to_string(dir.join(name)).map(|s| s.trim().to_owned());
        match (read("address"), read("token")) {
            (Ok(address), Ok(token)) if !address.is_empty() => Ok(Endpoint {
                base: format!("http://{address}{}", crate::api::PREFIX),
                token,
            }),
            _ => Err(ClientError::NotRunning(home.display().to_string())),
        }
    }

    fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, ClientError> {
        let endpoint = self.endpoint()?;
        Ok(self
            .http
            .request(method, format!("{}{path}", endpoint.base))
            .bearer_auth(endpoint.token))
    }

    async fn send<T: DeserializeOwned>(&self, builder: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let bytes = self.send_raw(builder.timeout(REQUEST_TIMEOUT)).await?;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()))
    }

    async fn send_raw(&self, builder: reqwest::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let answer = exchange(builder)
            .await
            .map_err(transport)
            .and_then(|a| a.map_err(|(status, message)| ClientError::Http { status, message }));
        self.check(&answer);
        answer
    }

    /// A context's request that found no kilnd behind the tunnel (refused locally: the tunnel
    /// is gone; cut off: ssh could not reach the remote port), or a token it no longer takes
    /// (the remote daemon restarted): the session reconnects, which starts that kilnd again.
    fn check<T>(&self, answer: &Result<T, ClientError>) {
        if let (Daemon::Remote(session), Err(e)) = (&self.daemon, answer)
            && (e.is_unreachable() || matches!(e, ClientError::Transport(_) | ClientError::Http { status: 401, .. }))
        {
            session.lost(&format!("kilnd did not answer through the tunnel ({e})"));
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path)?).await
    }

    async fn get_with<T: DeserializeOwned>(&self, path: &str, query: &impl Serialize) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path)?.query(query)).await
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, ClientError> {
        self.send(self.request(Method::POST, path)?.json(body)).await
    }

    /// Who answers, for which home.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get("/health").await
    }

    /// Every model, one line each.
    pub async fn models(&self) -> Result<ModelList, ClientError> {
        self.get("/models").await
    }

    /// Every version matching all words of `filter` (empty: every version).
    pub async fn versions(&self, filter: &str) -> Result<VersionList, ClientError> {
        let query = VersionFilter {
            filter: filter.to_owned(),
        };
        self.get_with("/versions", &query).await
    }

    /// One model with its versions.
    pub async fn model(&self, model: &Name) -> Result<ModelView, ClientError> {
        self.get(&format!("/models/{model}")).await
    }

    /// One version (by number or alias), its aliases and evals.
    pub async fn version(&self, model: &Name, version: &Selector) -> Result<VersionView, ClientError> {
        self.get(&format!("/models/{model}/versions/{version}")).await
    }

    /// Removes a version; `force` also drops the aliases pointing at it.
    pub async fn remove_version(&self, model: &Name, version: u32, force: bool) -> Result<VersionRemoved, ClientError> {
        let builder = self.request(Method::DELETE, &format!("/models/{model}/versions/{version}"))?;
        self.send(builder.query(&RemoveQuery { force })).await
    }

    /// Points `alias` at `version`.
    pub async fn set_alias(&self, model: &Name, alias: &Name, version: Selector) -> Result<AliasSet, ClientError> {
        let builder = self.request(Method::PUT, &format!("/models/{model}/aliases/{alias}"))?;
        self.send(builder.json(&AliasRequest { version })).await
    }

    /// Removes `alias`.
    pub async fn remove_alias(&self, model: &Name, alias: &Name) -> Result<AliasRemoved, ClientError> {
        self.send(self.request(Method::DELETE, &format!("/models/{model}/aliases/{alias}"))?)
            .await
    }

    /// Imports external weights as a new version of `model`.
    pub async fn import(&self, model: &Name, request: &ImportRequest) -> Result<VersionManifest, ClientError> {
        self.post(&format!("/models/{model}/import"), request).await
    }

    /// Re-hashes every blob and checks every manifest.
    pub async fn verify(&self) -> Result<VerifyReport, ClientError> {
        self.get("/registry/verify").await
    }

    /// Canaries in progress.
    pub async fn canaries(&self) -> Result<Canaries, ClientError> {
        self.get("/canaries").await
    }

    /// Promotes `model`'s canary now.
    pub async fn promote_canary(&self, model: &Name) -> Result<JournalEntry, ClientError> {
        self.post(&format!("/canaries/{model}/promote"), &serde_json::json!({}))
            .await
    }

    /// Aborts `model`'s canary.
    pub async fn abort_canary(&self, model: &Name) -> Result<JournalEntry, ClientError> {
        self.post(&format!("/canaries/{model}/abort"), &serde_json::json!({}))
            .await
    }

    /// Every version's signature status.
    pub async fn signatures(&self) -> Result<Signatures, ClientError> {
        self.get("/signatures").await
    }

    /// One version's signature status and bundle.
    pub async fn signature(&self, model: &Name, version: u32) -> Result<SignatureView, ClientError> {
        self.get(&format!("/models/{model}/versions/{version}/signature")).await
    }

    /// Stores a signature made with the operator's key (checked by the daemon first).
    pub async fn sign(&self, model: &Name, version: u32, request: &SignRequest) -> Result<SignatureView, ClientError> {
        self.post(&format!("/models/{model}/versions/{version}/signature"), request)
            .await
    }

    /// A blob's bytes (the daemon checks them against the digest on the way).
    pub async fn blob(&self, digest: &Digest) -> Result<Vec<u8>, ClientError> {
        self.send_raw(
            self.request(Method::GET, &format!("/blobs/{digest}"))?
                .timeout(BLOB_TIMEOUT),
        )
        .await
    }

    /// An evaluation report, from its blob.
    pub async fn report(&self, digest: &Digest) -> Result<EvalReport, ClientError> {
        self.get(&format!("/blobs/{digest}")).await
    }

    /// Every job, oldest first.
    pub async fn jobs(&self) -> Result<JobList, ClientError> {
        self.get("/jobs").await
    }

    /// One job.
    pub async fn job(&self, id: &JobId) -> Result<JobView, ClientError> {
        self.get(&format!("/jobs/{id}")).await
    }

    /// Queues a job; the daemon assigns its id.
    pub async fn submit(&self, request: &JobRequest) -> Result<JobView, ClientError> {
        self.post("/jobs", request).await
    }

    /// Cancels a job (a running worker checkpoints first).
    pub async fn cancel(&self, id: &JobId) -> Result<JobView, ClientError> {
        self.send(self.request(Method::POST, &format!("/jobs/{id}/cancel"))?)
            .await
    }

    /// Every study, by name.
    pub async fn studies(&self) -> Result<StudyList, ClientError> {
        self.get("/studies").await
    }

    /// One study with its trials.
    pub async fn study(&self, name: &Name) -> Result<StudyView, ClientError> {
        self.get(&format!("/studies/{name}")).await
    }

    /// Checks a study spec and starts it (a bad spec is a 422 naming the line).
    pub async fn create_study(&self, request: &StudyCreate) -> Result<StudyView, ClientError> {
        self.post("/studies", request).await
    }

    /// Stops a study: no new trials, running ones cancelled with a checkpoint.
    pub async fn stop_study(&self, name: &Name) -> Result<StudyView, ClientError> {
        self.send(self.request(Method::POST, &format!("/studies/{name}/stop"))?)
            .await
    }

    /// Resumes a stopped study (cancelled trials continue from their checkpoints).
    pub async fn resume_study(&self, name: &Name) -> Result<StudyView, ClientError> {
        self.send(self.request(Method::POST, &format!("/studies/{name}/resume"))?)
            .await
    }

    /// Registers a trial's best checkpoint (the best trial's by default) as a version.
    pub async fn promote_trial(&self, name: &Name, request: &PromoteRequest) -> Result<VersionManifest, ClientError> {
        self.post(&format!("/studies/{name}/promote"), request).await
    }

    /// Samples of `model@version`'s latest evaluation: a confusion-matrix cell, the worst, or
    /// where another version disagrees.
    pub async fn inspect(&self, model: &Name, version: u32, query: &InspectQuery) -> Result<Inspection, ClientError> {
        self.get_with(&format!("/models/{model}/versions/{version}/inspect"), query)
            .await
    }

    /// One evaluated row as the model saw it, with the version's answer.
    pub async fn sample(&self, model: &Name, version: u32, index: u32) -> Result<SampleDetail, ClientError> {
        self.get(&format!("/models/{model}/versions/{version}/samples/{index}"))
            .await
    }

    /// The epochs of job `id` whose checkpoints are kept (promote from the curve).
    pub async fn epochs(&self, id: &JobId) -> Result<EpochList, ClientError> {
        self.get(&format!("/jobs/{id}/epochs")).await
    }

    /// Registers epoch `epoch`'s checkpoint of job `id` as a version of the job's model.
    pub async fn register_epoch(&self, id: &JobId, epoch: usize) -> Result<VersionManifest, ClientError> {
        self.post(&format!("/jobs/{id}/epochs/{epoch}/register"), &serde_json::json!({}))
            .await
    }

    /// Runs a deploy's gates without switching.
    pub async fn check_gates(&self, request: &GateRequest) -> Result<GateResult, ClientError> {
        self.post("/deployments/gates", request).await
    }

    /// Metric lines after byte offset `since`.
    pub async fn metrics(&self, id: &JobId, since: u64) -> Result<MetricsChunk, ClientError> {
        self.get_with(&format!("/jobs/{id}/metrics"), &Since { since }).await
    }

    /// Worker log text after byte offset `since`.
    pub async fn log(&self, id: &JobId, since: u64) -> Result<LogChunk, ClientError> {
        self.get_with(&format!("/jobs/{id}/log"), &Since { since }).await
    }

    /// GPU state and the sample history (after `since_ms` when given).
    pub async fn telemetry(&self, since_ms: Option<u64>) -> Result<Telemetry, ClientError> {
        self.get_with("/telemetry", &TelemetryQuery { since_ms }).await
    }

    /// What is deployed, with live figures.
    pub async fn deployments(&self) -> Result<Deployments, ClientError> {
        self.get("/deployments").await
    }

    /// The deployment journal (its last `limit` entries when given).
    pub async fn journal(&self, limit: Option<usize>) -> Result<Journal, ClientError> {
        self.get_with("/deployments/journal", &JournalQuery { limit }).await
    }

    /// Loads, warms up and switches to a version.
    pub async fn deploy(&self, request: &DeployRequest) -> Result<JournalEntry, ClientError> {
        self.post("/deployments", request).await
    }

    /// Switches a model back.
    pub async fn rollback(&self, model: &Name, request: &RollbackRequest) -> Result<JournalEntry, ClientError> {
        self.post(&format!("/deployments/{model}/rollback"), request).await
    }

    /// Runs one dataset row through the deployed version.
    pub async fn try_sample(&self, model: &Name, index: usize) -> Result<TryResult, ClientError> {
        self.post(&format!("/deployments/{model}/try"), &TryRequest { index })
            .await
    }

    /// The event stream. Ends when the daemon closes it; events this client does not know
    /// (from a newer daemon) are skipped.
    pub async fn events(&self) -> Result<impl Stream<Item = Result<Event, ClientError>> + use<>, ClientError> {
        use eventsource_stream::Eventsource;
        let response = self
            .request(Method::GET, "/events")?
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(transport);
        self.check(&response);
        let response = response?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let refused = Err(ClientError::Http {
                status,
                message: "event stream refused".to_owned(),
            });
            self.check(&refused);
            return refused;
        }
        Ok(response.bytes_stream().eventsource().filter_map(|item| async move {
            match item {
                Ok(sse) => Event::decode(&sse.event, &sse.data)
                    .map_err(|e| ClientError::Decode(format!("{} event: {e}", sse.event)))
                    .transpose(),
                Err(e) => Some(Err(ClientError::Transport(e.to_string()))),
            }
        }))
    }
}

/// The inference endpoint (KServe v2) of the daemon of one `KILN_HOME`, as `kiln predict`
/// uses it: found through `$KILN_HOME/daemon/inference_address`, with `KILN_INFERENCE_TOKEN`
/// as its bearer token when set.
#[derive(Debug, Clone)]
pub struct Inference {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

/// Why an inference call did not succeed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum InferenceError {
    #[error("kilnd is not serving inference (see `kiln deployments` for why)")]
    NotServing,
    #[error("inference answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot reach the inference endpoint: {0}")]
    Transport(String),
    #[error("the inference endpoint sent something unexpected: {0}")]
    Decode(String),
}

impl Inference {
    /// Reads where inference listens; contacts nothing yet.
    pub fn new(home: &Path) -> Result<Self, InferenceError> {
        let address = std::fs::read_to_string(home.join("daemon").join("inference_address"))
            .map_err(|_| InferenceError::NotServing)?;
        Ok(Self::at(address.trim()))
    }

    /// The inference endpoint at `address` (`host:port`).
    pub fn at(address: &str) -> Self {
        let token = std::env::var("KILN_INFERENCE_TOKEN")
            .ok()
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty());
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{address}"),
            token,
        }
    }

    fn path(model: &str, version: Option<&str>) -> String {
        match version {
            Some(v) => format!("/v2/models/{model}/versions/{v}"),
            None => format!("/v2/models/{model}"),
        }
    }

    async fn send<T: DeserializeOwned>(&self, builder: reqwest::RequestBuilder) -> Result<T, InferenceError> {
        let builder = match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        };
        let bytes = exchange(builder.timeout(REQUEST_TIMEOUT))
            .await
            .map_err(|e| InferenceError::Transport(e.to_string()))?
            .map_err(|(status, message)| InferenceError::Http { status, message })?;
        serde_json::from_slice(&bytes).map_err(|e| InferenceError::Decode(e.to_string()))
    }

    /// The served model's metadata (its input and output tensors).
    pub async fn metadata(&self, model: &str, version: Option<&str>) -> Result<kserve::ModelMetadata, InferenceError> {
        let url = format!("{}{}", self.base, Self::path(model, version));
        self.send(self.http.get(url)).await
    }

    /// One infer request with JSON tensors.
    pub async fn infer(
        &self,
        model: &str,
        version: Option<&str>,
        request: &kserve::InferRequest,
    ) -> Result<kserve::InferResponse, InferenceError> {
        let url = format!("{}{}/infer", self.base, Self::path(model, version));
        self.send(self.http.post(url).json(request)).await
    }
}

/// The same clients for code that does not run async itself (the CLI): each call runs on a
/// small current-thread runtime owned by this value.
pub struct Blocking {
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Blocking {
    /// A blocking client for the daemon of `home`.
    pub fn new(home: &Path) -> std::io::Result<Self> {
        Self::with(Client::new(home))
    }

    /// A blocking client around `client` (e.g. a context's).
    pub fn with(client: Client) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        Ok(Self { runtime, client })
    }

    /// The async client, for [`Blocking::run`].
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `call` (one or more requests) to completion: `blocking.run(|c| c.health())`.
    pub fn run<'a, F: std::future::Future>(&'a self, call: impl FnOnce(&'a Client) -> F) -> F::Output {
        self.runtime.block_on(call(&self.client))
    }

    /// Runs any future on this client's runtime (e.g. an [`Inference`] call).
    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// Sends a request: the body of a 2xx answer, or the status and the error message (the
/// `ErrorBody`'s, else the body's text) of any other; the outer error is the transport's.
async fn exchange(builder: reqwest::RequestBuilder) -> Result<Result<Vec<u8>, (u16, String)>, reqwest::Error> {
    let response = builder.send().await?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await?;
    if (200..300).contains(&status) {
        return Ok(Ok(bytes.into()));
    }
    let message = serde_json::from_slice::<ErrorBody>(&bytes)
        .map(|b| b.error)
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
    Ok(Err((status, message)))
}

fn transport(e: reqwest::Error) -> ClientError {
    if e.is_connect() {
        ClientError::Transport(format!("{CONNECTION_REFUSED} ({e})"))
    } else {
        ClientError::Transport(e.to_string())
    }
}

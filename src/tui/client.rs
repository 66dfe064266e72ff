//! The console's side of kilnd's control API: [`Request`]s carried out through the one
//! client of the contract ([`kiln_core::client::Client`]), and the event stream kept open.
//!
//! Requests run as tokio tasks and report back as [`DaemonMsg`]s on the UI channel, stamped
//! with the client's generation ([`Event::Stamped`]); nothing here touches UI state. The event
//! stream ([`Client::events`]) reconnects with exponential backoff; while kilnd has no
//! `/api/v1/events` route the client falls back to a 2 s polling tick. The same holds for a
//! context's kilnd, whose ssh tunnel reconnects by itself: its failures name the context.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::event::{DaemonMsg, Event};
use super::request::Request;
use kiln_core::api::{DeployRequest, GateRequest, PromoteRequest, RollbackRequest, StudyCreate};
use kiln_core::client::{Client, ClientError};
use kiln_core::names::Selector;

/// Journal entries the serving screen asks for.
const JOURNAL_LIMIT: usize = 50;
const POLL_EVERY: Duration = Duration::from_secs(2);
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A connection that lived this long starts the next retry from the first backoff again.
const LONG_LIVED: Duration = Duration::from_secs(10);
/// How often an open event stream is cross-checked against `/api/v1/health`.
const HEALTH_EVERY: Duration = Duration::from_secs(10);
/// Longest silence tolerated on the event stream. The SSE decoder swallows keep-alive
/// comments, so this counts events only; kilnd pushes a telemetry sample every second.
const STREAM_SILENCE: Duration = Duration::from_secs(35);

/// Handle on the daemon of one `KILN_HOME`, here or on a context's box; cheap to clone.
#[derive(Debug, Clone)]
pub struct DaemonClient {
    client: Client,
    /// Stamped on everything this client sends (the console's generation when it was made).
    generation: u64,
}

impl DaemonClient {
    /// A client for the daemon under `home`; contacts nothing yet.
    pub fn new(home: &Path) -> Self {
        Self::from_client(Client::new(home))
    }

    /// A client around `client` (e.g. [`Client::remote`] for a context's kilnd).
    pub fn from_client(client: Client) -> Self {
        Self { client, generation: 0 }
    }

    /// The same client, stamping what it sends with `generation`.
    pub fn stamped(self, generation: u64) -> Self {
        Self { generation, ..self }
    }

    /// `msg` as this client's event.
    fn event(&self, msg: DaemonMsg) -> Event {
        Event::Stamped {
            generation: self.generation,
            msg: Box::new(msg),
        }
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
            let _ = tx.send(client.event(msg));
        });
    }

    /// Performs `request` and turns its answer into a message.
    pub async fn execute(&self, request: &Request) -> Result<DaemonMsg, ClientError> {
        let c = &self.client;
        Ok(match request {
            Request::Models => DaemonMsg::Models(c.models().await?),
            Request::Model(m) => DaemonMsg::ModelDetail(c.model(m).await?.model),
            Request::Version(m, v) => DaemonMsg::Version(c.version(m, &Selector::Version(*v)).await?),
            Request::Report(digest) => DaemonMsg::Report {
                digest: digest.clone(),
                report: c.report(digest).await?,
            },
            Request::Signatures => DaemonMsg::Signatures(c.signatures().await?),
            Request::Jobs => DaemonMsg::Jobs(c.jobs().await?.jobs),
            Request::Metrics { job, since } => DaemonMsg::Metrics {
                chunk: c.metrics(job, *since).await?,
                pushed: false,
            },
            Request::Log { job, since } => DaemonMsg::Log {
                job: job.clone(),
                chunk: c.log(job, *since).await?,
            },
            Request::Telemetry => DaemonMsg::Telemetry(c.telemetry(None).await?),
            Request::Deployments => DaemonMsg::Deployments(c.deployments().await?),
            Request::Journal => DaemonMsg::Journal(c.journal(Some(JOURNAL_LIMIT)).await?.entries),
            Request::Canaries => DaemonMsg::Canaries(c.canaries().await?.canaries),
            Request::Studies => DaemonMsg::Studies(c.studies().await?),
            Request::Epochs(job) => DaemonMsg::Epochs(c.epochs(job).await?),
            Request::CheckGates { model, version } => {
                let gates = GateRequest {
                    model: model.clone(),
                    version: Some(Selector::Version(*version)),
                    gate_samples: None,
                };
                DaemonMsg::Gates(Box::new(c.check_gates(&gates).await?))
            }
            Request::Inspect { model, version, query } => DaemonMsg::Inspected {
                model: model.clone(),
                version: *version,
                query: query.clone(),
                inspection: Box::new(c.inspect(model, *version, query).await?),
            },
            Request::Sample { model, version, index } => DaemonMsg::SampleLoaded {
                model: model.clone(),
                version: *version,
                detail: Box::new(c.sample(model, *version, *index).await?),
            },
            Request::CreateStudy { path } => return self.create_study(request, path).await,
            Request::StopStudy(s) => changed(request, c.stop_study(s).await?),
            Request::ResumeStudy(s) => changed(request, c.resume_study(s).await?),
            _ => self.execute_mutation(request).await?,
        })
    }

    async fn execute_mutation(&self, request: &Request) -> Result<DaemonMsg, ClientError> {
        let c = &self.client;
        Ok(match request {
            Request::SubmitJob(job) => DaemonMsg::Submitted(c.submit(job).await?),
            Request::CancelJob(id) => DaemonMsg::Job(c.cancel(id).await?),
            Request::Deploy {
                model,
                version,
                canary,
                force,
            } => {
                let deploy = DeployRequest {
                    model: model.clone(),
                    version: Some(Selector::Version(*version)),
                    batching: None,
                    force: *force,
                    gate_samples: None,
                    canary: *canary,
                };
                DaemonMsg::JournalEntry(c.deploy(&deploy).await?)
            }
            Request::RegisterEpoch { job, epoch } => DaemonMsg::EpochRegistered {
                job: job.clone(),
                epoch: *epoch,
                version: Box::new(c.register_epoch(job, *epoch).await?),
            },
            Request::Rollback { model, to } => {
                DaemonMsg::JournalEntry(c.rollback(model, &RollbackRequest { to: *to }).await?)
            }
            Request::PromoteCanary(model) => DaemonMsg::JournalEntry(c.promote_canary(model).await?),
            Request::AbortCanary(model) => DaemonMsg::JournalEntry(c.abort_canary(model).await?),
            Request::DeleteVersion { model, version } => {
                c.remove_version(model, *version, true).await?;
                DaemonMsg::RegistryChanged
            }
            Request::Try { model, index } => DaemonMsg::Tried(c.try_sample(model, *index).await?),
            Request::Promote { study, trial } => {
                let promote = PromoteRequest { trial: Some(*trial) };
                DaemonMsg::Promoted {
                    study: study.clone(),
                    trial: *trial,
                    version: Box::new(c.promote_trial(study, &promote).await?),
                }
            }
            other => return Err(ClientError::Decode(format!("{other:?} is not a mutation"))),
        })
    }

    /// Reads a study spec from this machine and asks kilnd to start it; a file that cannot be
    /// read never reaches kilnd.
    async fn create_study(&self, request: &Request, path: &Path) -> Result<DaemonMsg, ClientError> {
        let source = match std::fs::read_to_string(path) {
            Ok(source) => source,
            Err(e) => {
                return Ok(DaemonMsg::NotSent {
                    request: request.clone(),
                    reason: format!("cannot read {}: {e}", path.display()),
                });
            }
        };
        let file = path
            .file_name()
            .map_or_else(|| "study.toml".to_owned(), |f| f.to_string_lossy().into_owned());
        let study = self.client.create_study(&StudyCreate { source, file }).await?;
        Ok(changed(request, study))
    }

    /// Keeps the event stream open, reconnecting with backoff, until the task is aborted
    /// (a switch of context) or the console closes.
    pub fn spawn_events(&self, tx: UnboundedSender<Event>) -> JoinHandle<()> {
        let client = self.clone();
        tokio::spawn(async move {
            let mut backoff = FIRST_BACKOFF;
            loop {
                let started = Instant::now();
                let reason = match client.stream_events(&tx).await {
                    Ok(()) => "the event stream ended".to_owned(),
                    Err(e) => e.to_string(),
                };
                if tx.send(client.event(DaemonMsg::Disconnected(reason))).is_err() {
                    return;
                }
                if started.elapsed() > LONG_LIVED {
                    backoff = FIRST_BACKOFF;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        })
    }

    /// Forwards events until the stream ends or goes quiet; a kilnd without the route (404)
    /// is polled instead.
    async fn stream_events(&self, tx: &UnboundedSender<Event>) -> Result<(), ClientError> {
        let events = match self.client.events().await {
            Err(e) if e.is_not_found() => return self.poll(tx).await,
            other => other?,
        };
        let mut events = std::pin::pin!(events);
        self.send(tx, DaemonMsg::Connected { live: true })?;
        let mut health = tokio::time::interval(HEALTH_EVERY);
        health.tick().await;
        loop {
            // Silence for longer than STREAM_SILENCE means the connection is dead even if the
            // socket has not noticed yet. A daemon that is shutting down may keep the stream
            // open while its control API is gone: the health probe notices that.
            let next = tokio::select! {
                next = tokio::time::timeout(STREAM_SILENCE, events.next()) => next.map_err(|_| silence())?,
                _ = health.tick() => {
                    self.client.health().await?;
                    continue;
                }
            };
            match next {
                Some(Ok(event)) => self.send(tx, event.into())?,
                // An event this console cannot read is skipped, not a reason to reconnect.
                Some(Err(ClientError::Decode(_))) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    }

    fn send(&self, tx: &UnboundedSender<Event>, msg: DaemonMsg) -> Result<(), ClientError> {
        tx.send(self.event(msg))
            .map_err(|_| ClientError::Transport("the console is closing".into()))
    }

    /// No event stream on this kilnd: tick every [`POLL_EVERY`] while its health answers.
    async fn poll(&self, tx: &UnboundedSender<Event>) -> Result<(), ClientError> {
        self.send(tx, DaemonMsg::Connected { live: false })?;
        loop {
            tokio::time::sleep(POLL_EVERY).await;
            self.client.health().await?;
            self.send(tx, DaemonMsg::PollTick)?;
        }
    }
}

fn changed(request: &Request, study: kiln_core::api::StudyView) -> DaemonMsg {
    DaemonMsg::StudyChanged {
        request: request.clone(),
        study: Box::new(study),
    }
}

fn silence() -> ClientError {
    ClientError::Transport(format!("no word from kilnd for {}s", STREAM_SILENCE.as_secs()))
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::unbounded_channel;

    use super::*;
    use crate::fake_daemon;

    fn received(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Event>) -> Vec<DaemonMsg> {
        std::iter::from_fn(|| match rx.try_recv() {
            Ok(Event::Daemon(msg) | Event::Stamped { msg, .. }) => Some(*msg),
            _ => None,
        })
        .collect()
    }

    #[tokio::test]
    async fn stream_events_become_messages_and_unknown_ones_are_skipped() {
        let body = "event: registry\ndata: {\"at\":\"2026-11-30T00:00:00Z\"}\n\n\
                    event: from-a-newer-daemon\ndata: {}\n\n\
                    event: lagged\ndata: {\"missed\":2}\n\n";
        let daemon = fake_daemon::answer_with("200 OK", "text/event-stream", body);
        let (tx, mut rx) = unbounded_channel();
        let ended = DaemonClient::new(daemon.home.path()).stream_events(&tx).await;
        assert_eq!(ended, Ok(()), "the daemon closed the stream");
        let msgs = received(&mut rx);
        assert!(
            matches!(
                msgs.as_slice(),
                [
                    DaemonMsg::Connected { live: true },
                    DaemonMsg::RegistryChanged,
                    DaemonMsg::Lagged
                ]
            ),
            "{msgs:?}"
        );
        assert_eq!(daemon.request_line(), "GET /api/v1/events HTTP/1.1");
    }

    #[tokio::test]
    async fn an_unreadable_spec_never_reaches_kilnd() {
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let path = home.path().join("missing.toml");
        let request = Request::CreateStudy { path: path.clone() };
        let answer = DaemonClient::new(home.path()).execute(&request).await;
        let Ok(DaemonMsg::NotSent { reason, .. }) = answer else {
            panic!("expected NotSent, got {answer:?}");
        };
        assert!(
            reason.starts_with(&format!("cannot read {}", path.display())),
            "{reason}"
        );
    }

    #[tokio::test]
    async fn a_spec_is_posted_and_a_422_comes_back_with_its_message() {
        let message = r#"{"error":"lr.toml line 9: parameter `lr`: bad range"}"#;
        let daemon = fake_daemon::answer_once("422 Unprocessable Entity", message);
        let path = daemon.home.path().join("lr.toml");
        std::fs::write(&path, "name = \"x\"\n").unwrap_or_else(|e| panic!("write: {e}"));
        let request = Request::CreateStudy { path };
        let answer = DaemonClient::new(daemon.home.path()).execute(&request).await;
        let expected = ClientError::Http {
            status: 422,
            message: "lr.toml line 9: parameter `lr`: bad range".into(),
        };
        assert_eq!(answer.err(), Some(expected));
        assert_eq!(daemon.request_line(), "POST /api/v1/studies HTTP/1.1");
    }

    #[tokio::test]
    async fn a_daemon_without_an_event_stream_is_polled() {
        let daemon = fake_daemon::answer_once("404 Not Found", r#"{"error":"no such route"}"#);
        let (tx, mut rx) = unbounded_channel();
        let client = DaemonClient::new(daemon.home.path());
        let ended = client.stream_events(&tx).await;
        let msgs = received(&mut rx);
        assert!(
            matches!(msgs.as_slice(), [DaemonMsg::Connected { live: false }]),
            "{msgs:?}"
        );
        assert!(
            ended.is_err_and(|e| e.is_unreachable()),
            "polling stops once health fails"
        );
    }
}

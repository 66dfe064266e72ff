//! Everything the UI loop reacts to arrives as one [`Event`] on one channel: key presses and
//! resizes from the input thread, and [`DaemonMsg`]s from the HTTP/SSE tasks. What the
//! connection to one context sends comes [`Event::Stamped`] with that connection's
//! generation, so nothing from a box the console has left reaches the state of the next.

use ratatui::crossterm::event::{self as term, KeyEvent, KeyEventKind};
use tokio::sync::mpsc::UnboundedSender;

use super::request::Request;
use super::state::contexts::ContextEntry;
use kiln_core::api::{
    self, Deployments, EpochList, EvalReport, GateResult, JobView, JournalEntry, LogChunk, MetricsChunk, ModelDetail,
    ModelList, Sample, Signatures, StudyList, StudyView, Telemetry, TryResult, VersionView,
};
use kiln_core::client::ClientError;
use kiln_core::context::ContextStatus;
use kiln_core::deploy::CanaryView;
use kiln_core::inspect::{InspectQuery, Inspection, SampleDetail};
use kiln_core::jobs::JobId;
use kiln_core::names::{Digest, Name};
use kiln_core::registry::VersionManifest;

/// One thing that happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key was pressed (releases are dropped).
    Key(KeyEvent),
    /// The terminal changed size.
    Resized,
    /// The daemon answered, pushed an event, or went away.
    Daemon(Box<DaemonMsg>),
    /// A [`DaemonMsg`] of the connection to one context: dropped unless `generation` is
    /// still the console's (it has not switched contexts since).
    Stamped { generation: u64, msg: Box<DaemonMsg> },
    /// SIGTERM or SIGHUP (e.g. the SSH session closed): leave, restoring the terminal.
    Terminate,
}

/// What the daemon told us (answers to [`Request`]s and SSE events), already decoded.
#[derive(Debug, Clone)]
pub enum DaemonMsg {
    /// The event stream is open (`live`), or kilnd answers but has no event stream (then the
    /// console polls).
    Connected {
        live: bool,
    },
    /// The daemon cannot be reached; the client retries with backoff.
    Disconnected(String),
    /// A polling tick, sent only while kilnd has no event stream.
    PollTick,
    /// The session of context `name` is open: the loop can attach to it.
    ContextOpened {
        name: String,
    },
    /// Context `name` could not be opened (why, naming the context); the loop retries.
    ContextUnreachable {
        name: String,
        problem: String,
    },
    /// The contexts config.toml names now (or why it could not be read).
    ContextsListed(Result<Vec<ContextEntry>, String>),
    /// One context's live figures, for the contexts screen.
    ContextSurveyed(ContextStatus),
    /// Every few seconds: time to survey the contexts again, if their screen shows.
    SurveyTick,
    Models(ModelList),
    ModelDetail(ModelDetail),
    Version(VersionView),
    Report {
        digest: Digest,
        report: EvalReport,
    },
    /// Every version's signature status.
    Signatures(Signatures),
    Jobs(Vec<JobView>),
    Job(JobView),
    /// New metric lines: fetched history (`pushed: false`) or an SSE `metrics` event.
    Metrics {
        chunk: MetricsChunk,
        pushed: bool,
    },
    Log {
        job: JobId,
        chunk: LogChunk,
    },
    Telemetry(Telemetry),
    Sample(Sample),
    Deployments(Deployments),
    Journal(Vec<JournalEntry>),
    /// Canaries in progress.
    Canaries(Vec<CanaryView>),
    /// A deploy, rollback or canary step happened (SSE `deployment`, or the answer to our own request).
    JournalEntry(JournalEntry),
    /// Models changed on disk: refetch them.
    RegistryChanged,
    /// The event stream dropped events: refetch everything.
    Lagged,
    /// A study or one of its trials changed (SSE `study`).
    Study(Box<StudyView>),
    /// Every study kilnd could read.
    Studies(StudyList),
    /// kilnd carried out our create / stop / resume (`request`): the study as it now stands.
    StudyChanged {
        request: Request,
        study: Box<StudyView>,
    },
    /// A trial's best checkpoint was registered as `version`.
    Promoted {
        study: Name,
        trial: u32,
        version: Box<VersionManifest>,
    },
    /// What the gates of a deploy found, before the deploy dialog's final confirm.
    Gates(Box<GateResult>),
    /// The kept epoch checkpoints of a training job.
    Epochs(EpochList),
    /// Epoch `epoch` of `job` was registered as `version`.
    EpochRegistered {
        job: JobId,
        epoch: usize,
        version: Box<VersionManifest>,
    },
    /// Samples of `model@version`'s evaluation, for the query that asked for them.
    Inspected {
        model: Name,
        version: u32,
        query: InspectQuery,
        inspection: Box<Inspection>,
    },
    /// One evaluated row of `model@version` as the model saw it.
    SampleLoaded {
        model: Name,
        version: u32,
        detail: Box<SampleDetail>,
    },
    /// A job we submitted was accepted.
    Submitted(JobView),
    /// Answer to a test request.
    Tried(TryResult),
    /// A request failed.
    Failed {
        request: Request,
        error: ClientError,
    },
    /// A request never reached kilnd: its input could not be read here (why).
    NotSent {
        request: Request,
        reason: String,
    },
}

impl From<api::Event> for DaemonMsg {
    /// What an event of `GET /events` means to the console.
    fn from(event: api::Event) -> Self {
        match event {
            api::Event::Job(job) => Self::Job(*job),
            api::Event::Metrics(chunk) => Self::Metrics { chunk, pushed: true },
            api::Event::Registry(_) => Self::RegistryChanged,
            api::Event::Telemetry(sample) => Self::Sample(*sample),
            api::Event::Deployment(entry) => Self::JournalEntry(*entry),
            api::Event::Study(study) => Self::Study(study),
            api::Event::Lagged(_) => Self::Lagged,
        }
    }
}

impl From<DaemonMsg> for Event {
    fn from(msg: DaemonMsg) -> Self {
        Event::Daemon(Box::new(msg))
    }
}

/// Turns SIGTERM and SIGHUP into [`Event::Terminate`], so the terminal is restored.
pub fn spawn_signals(tx: UnboundedSender<Event>) {
    use tokio::signal::unix::{SignalKind, signal};
    tokio::spawn(async move {
        let (Ok(mut term), Ok(mut hup)) = (signal(SignalKind::terminate()), signal(SignalKind::hangup())) else {
            return;
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = hup.recv() => {}
        }
        let _ = tx.send(Event::Terminate);
    });
}

/// Reads the terminal on its own thread (blocking reads, so an idle console wakes for
/// nothing) and forwards keys and resizes until the receiver is gone.
pub fn spawn_input(tx: UnboundedSender<Event>) {
    std::thread::spawn(move || {
        loop {
            let event = match term::read() {
                Ok(term::Event::Key(key)) if key.kind != KeyEventKind::Release => Event::Key(key),
                Ok(term::Event::Resize(..)) => Event::Resized,
                Ok(_) => continue,
                Err(_) => break,
            };
            if tx.send(event).is_err() {
                break;
            }
        }
    });
}

//! Everything the UI loop reacts to arrives as one [`Event`] on one channel: key presses and
//! resizes from the input thread, and [`DaemonMsg`]s from the HTTP/SSE tasks.

use ratatui::crossterm::event::{self as term, KeyEvent, KeyEventKind};
use tokio::sync::mpsc::UnboundedSender;

use super::api::{
    Deployments, EvalReport, JobView, JournalEntry, LogChunk, MetricsChunk, ModelDetailView, ModelList, TryResult,
    VersionView,
};
use super::client::{ApiError, Request};
use kiln_core::telemetry::{Sample, Telemetry};

/// One thing that happened.
#[derive(Debug, Clone)]
pub enum Event {
    /// A key was pressed (releases are dropped).
    Key(KeyEvent),
    /// The terminal changed size.
    Resized,
    /// The daemon answered, pushed an event, or went away.
    Daemon(Box<DaemonMsg>),
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
    Models(ModelList),
    ModelDetail(ModelDetailView),
    Version(VersionView),
    Report {
        digest: String,
        report: EvalReport,
    },
    Jobs(Vec<JobView>),
    Job(JobView),
    Metrics {
        job: String,
        chunk: MetricsChunk,
    },
    Log {
        job: String,
        chunk: LogChunk,
    },
    Telemetry(Telemetry),
    Sample(Sample),
    Deployments(Deployments),
    Journal(Vec<JournalEntry>),
    /// A deploy or rollback happened (SSE `deployment`, or the answer to our own request).
    JournalEntry(JournalEntry),
    /// Models changed on disk: refetch them.
    RegistryChanged,
    /// The event stream dropped events: refetch everything.
    Lagged,
    /// A job we submitted was accepted.
    Submitted(JobView),
    /// Answer to a test request.
    Tried {
        model: String,
        result: TryResult,
    },
    /// A request failed.
    Failed {
        request: Request,
        error: ApiError,
    },
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

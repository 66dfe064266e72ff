//! The loop's connection to the kilnd the console shows (this box's, or a context's through
//! its ssh session), and the surveys of every context for the contexts screen. Nothing here
//! touches UI state: the opening of a session, the surveys and the event stream report back
//! as [`DaemonMsg`]s.
//!
//! ```text
//!  :ctx NAME ─▶ Effect::SwitchContext ─▶ Link::switch: abort the event stream, drop the old
//!     session, open NAME's on a blocking thread (retried) ──ContextOpened──▶ App::update
//!  ─▶ Effect::AttachContext ─▶ Link::attach: a DaemonClient over Client::remote(session),
//!     spawn_events ──Connected──▶ App refetches everything
//! ```
//!
//! Sessions live in one cache that the current context and the surveys share: the contexts
//! screen opens each box once, and switching to a box it surveyed reuses that tunnel. Opening
//! a session runs ssh and blocks, so it always runs on tokio's blocking threads; so does
//! dropping the sessions a switch leaves (closing a tunnel runs `ssh -O cancel`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;
use tokio::task::JoinHandle;

use super::client::DaemonClient;
use super::event::{DaemonMsg, Event};
use super::request::Request;
use super::screens::contexts::SURVEY_EVERY_S;
use super::state::contexts::ContextEntry;
use kiln_core::client::{Client, ClientError};
use kiln_core::context::{self, ContextConfig, ContextError, ContextStatus, LOCAL, Session};

/// Between two attempts to open the current context's session: doubling up to the second.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(10);
/// How long one context's survey may take once its session is open.
const SURVEY_TIMEOUT: Duration = Duration::from_secs(10);

/// The open sessions, by context name.
#[derive(Debug, Clone, Default)]
struct Sessions(Arc<Mutex<BTreeMap<String, Arc<Session>>>>);

impl Sessions {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, Arc<Session>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, name: &str) -> Option<Arc<Session>> {
        self.lock().get(name).cloned()
    }

    fn remove(&self, name: &str) -> Option<Arc<Session>> {
        self.lock().remove(name)
    }

    /// The open session of `name`, else a new one from `config` (opened on a blocking thread).
    async fn open<F>(&self, name: &str, config: F) -> Result<Arc<Session>, String>
    where
        F: FnOnce() -> Result<ContextConfig, ContextError> + Send + 'static,
    {
        if let Some(session) = self.get(name) {
            return Ok(session);
        }
        let (cache, name) = (self.clone(), name.to_owned());
        let opening = tokio::task::spawn_blocking(move || {
            let session = Session::open(&name, config().map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
            // Another task may have opened it meanwhile: keep the first, close this one.
            let first = cache.lock().entry(name).or_insert_with(|| Arc::clone(&session)).clone();
            drop(session);
            Ok(first)
        });
        opening.await.map_err(|e| format!("opening the session failed: {e}"))?
    }
}

/// Drops what a switch leaves on a blocking thread: the last reference to a session closes
/// its tunnel, which may run ssh.
fn retire(client: Option<DaemonClient>, session: Option<Arc<Session>>) {
    if client.is_some() || session.is_some() {
        tokio::task::spawn_blocking(move || drop((client, session)));
    }
}

/// The connection to the current context's kilnd, and the contexts' sessions.
#[derive(Debug)]
pub struct Link {
    home: PathBuf,
    config_dir: Option<PathBuf>,
    context: String,
    generation: u64,
    /// `None` while the current context's session opens.
    client: Option<DaemonClient>,
    /// The event stream, or the opening of the session before it.
    task: Option<JoinHandle<()>>,
    sessions: Sessions,
    /// The surveys under way, by context: a slow box is not asked again before it answers.
    surveys: HashMap<String, JoinHandle<()>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.surveys.values().for_each(JoinHandle::abort);
    }
}

impl Link {
    /// Connected to nothing yet: [`Link::switch`] connects.
    pub fn new(home: PathBuf, config_dir: Option<PathBuf>) -> Self {
        Self {
            home,
            config_dir,
            context: LOCAL.to_owned(),
            generation: 0,
            client: None,
            task: None,
            sessions: Sessions::default(),
            surveys: HashMap::new(),
        }
    }

    /// The contexts config.toml names (or why it cannot be read).
    pub fn list(&self) -> Result<Vec<ContextEntry>, String> {
        let contexts = context::load(self.config_dir.as_deref()).map_err(|e| e.to_string())?;
        Ok(contexts
            .into_iter()
            .map(|(name, config)| ContextEntry {
                name: name.to_string(),
                ssh: Some(config.ssh),
            })
            .collect())
    }

    /// Leaves the current kilnd (its event stream and session) for context `name`'s; what
    /// the new connection sends is stamped with `generation`.
    pub fn switch(&mut self, name: &str, generation: u64, tx: &UnboundedSender<Event>) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let old_session = (self.context != name)
            .then(|| self.sessions.remove(&self.context))
            .flatten();
        retire(self.client.take(), old_session);
        self.context = name.to_owned();
        self.generation = generation;
        if name == LOCAL {
            self.start(DaemonClient::new(&self.home), tx);
        } else {
            self.task = Some(self.spawn_opening(tx.clone()));
        }
    }

    /// The session of context `name` opened: talk to its kilnd (unless the console has left
    /// it since).
    pub fn attach(&mut self, name: &str, generation: u64, tx: &UnboundedSender<Event>) {
        if generation != self.generation || name != self.context {
            return;
        }
        match self.sessions.get(name) {
            Some(session) => self.start(DaemonClient::from_client(Client::remote(session)), tx),
            // Closed since it opened: open it again.
            None => self.switch(name, generation, tx),
        }
    }

    fn start(&mut self, client: DaemonClient, tx: &UnboundedSender<Event>) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        let client = client.stamped(self.generation);
        self.task = Some(client.spawn_events(tx.clone()));
        self.client = Some(client);
    }

    /// Opens the current context's session, retrying with backoff until it opens (or the
    /// task is aborted by the next switch); reports each failure.
    fn spawn_opening(&self, tx: UnboundedSender<Event>) -> JoinHandle<()> {
        let (name, generation) = (self.context.clone(), self.generation);
        let (sessions, config_dir) = (self.sessions.clone(), self.config_dir.clone());
        tokio::spawn(async move {
            let mut retry = FIRST_RETRY;
            loop {
                // config.toml is read again on every try: a fix there is picked up.
                let (dir, n) = (config_dir.clone(), name.clone());
                let opened = sessions.open(&name, move || context::find(dir.as_deref(), &n)).await;
                let msg = match opened {
                    Ok(_) => DaemonMsg::ContextOpened { name: name.clone() },
                    Err(problem) => DaemonMsg::ContextUnreachable {
                        name: name.clone(),
                        problem,
                    },
                };
                let done = matches!(msg, DaemonMsg::ContextOpened { .. });
                let msg = Box::new(msg);
                if tx.send(Event::Stamped { generation, msg }).is_err() || done {
                    return;
                }
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        })
    }

    /// Runs `request` against the current kilnd; while its session opens, it fails at once.
    pub fn spawn(&self, request: Request, tx: &UnboundedSender<Event>) {
        if let Some(client) = &self.client {
            client.spawn(request, tx);
            return;
        }
        let error = ClientError::Tunnel(format!("context {}: not connected yet", self.context));
        let msg = Box::new(DaemonMsg::Failed { request, error });
        let _ = tx.send(Event::Stamped {
            generation: self.generation,
            msg,
        });
    }

    /// Reads config.toml's contexts again and surveys this box and each of them, opening
    /// their sessions as needed; each answer arrives as its own message.
    pub fn survey(&mut self, tx: &UnboundedSender<Event>) {
        let listed = context::load(self.config_dir.as_deref()).map_err(|e| e.to_string());
        let entries = listed.as_ref().map_err(Clone::clone).map(|contexts| {
            contexts
                .iter()
                .map(|(name, config)| ContextEntry {
                    name: name.to_string(),
                    ssh: Some(config.ssh.clone()),
                })
                .collect()
        });
        let _ = tx.send(DaemonMsg::ContextsListed(entries).into());
        self.surveys.retain(|_, task| !task.is_finished());
        if !self.surveys.contains_key(LOCAL) {
            let (client, tx) = (Client::new(&self.home), tx.clone());
            let task = tokio::spawn(async move {
                let status = surveyed(LOCAL, None, context::survey(LOCAL, None, &client)).await;
                let _ = tx.send(DaemonMsg::ContextSurveyed(status).into());
            });
            self.surveys.insert(LOCAL.to_owned(), task);
        }
        for (name, config) in listed.into_iter().flatten() {
            let name = name.to_string();
            if !self.surveys.contains_key(&name) {
                let task = tokio::spawn(survey_remote(name.clone(), config, self.sessions.clone(), tx.clone()));
                self.surveys.insert(name, task);
            }
        }
    }
}

/// Surveys one context through its session, opening it first when needed.
async fn survey_remote(name: String, config: ContextConfig, sessions: Sessions, tx: UnboundedSender<Event>) {
    let ssh = config.ssh.clone();
    let status = match sessions.open(&name, move || Ok(config)).await {
        Ok(session) => {
            let client = Client::remote(session);
            surveyed(&name, Some(&ssh), context::survey(&name, Some(&ssh), &client)).await
        }
        Err(problem) => ContextStatus {
            name,
            ssh: Some(ssh),
            problem: Some(problem),
            ..ContextStatus::default()
        },
    };
    let _ = tx.send(DaemonMsg::ContextSurveyed(status).into());
}

/// A survey's answer, or a status saying it took too long.
async fn surveyed(
    name: &str,
    ssh: Option<&str>,
    survey: impl std::future::Future<Output = ContextStatus>,
) -> ContextStatus {
    tokio::time::timeout(SURVEY_TIMEOUT, survey)
        .await
        .unwrap_or_else(|_| ContextStatus {
            name: name.to_owned(),
            ssh: ssh.map(str::to_owned),
            problem: Some(format!("kilnd did not answer within {}s", SURVEY_TIMEOUT.as_secs())),
            ..ContextStatus::default()
        })
}

/// Ticks every few seconds for the contexts screen's surveys (the app ignores them elsewhere).
pub fn spawn_survey_ticks(tx: UnboundedSender<Event>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(Duration::from_secs(SURVEY_EVERY_S));
        ticks.tick().await;
        loop {
            ticks.tick().await;
            if tx.send(DaemonMsg::SurveyTick.into()).is_err() {
                return;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

    use super::*;

    /// The next message, with its generation (`None`: unstamped).
    async fn next(rx: &mut UnboundedReceiver<Event>) -> (Option<u64>, DaemonMsg) {
        let event = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
        match event {
            Ok(Some(Event::Stamped { generation, msg })) => (Some(generation), *msg),
            Ok(Some(Event::Daemon(msg))) => (None, *msg),
            other => panic!("expected a daemon message, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unknown_context_is_reported_stamped_and_requests_fail_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut link = Link::new(dir.path().join("home"), Some(dir.path().to_owned()));
        let (tx, mut rx) = unbounded_channel();
        link.switch("nope", 3, &tx);
        let (generation, msg) = next(&mut rx).await;
        assert_eq!(generation, Some(3));
        let DaemonMsg::ContextUnreachable { name, problem } = msg else {
            panic!("expected ContextUnreachable, got {msg:?}");
        };
        assert_eq!(name, "nope");
        assert!(problem.starts_with("no context named nope in "), "{problem}");
        link.spawn(Request::Models, &tx);
        let (generation, msg) = next(&mut rx).await;
        assert_eq!(generation, Some(3));
        let DaemonMsg::Failed { error, .. } = msg else {
            panic!("expected Failed, got {msg:?}");
        };
        assert_eq!(error.to_string(), "context nope: not connected yet");
    }

    #[tokio::test]
    async fn a_survey_lists_the_contexts_and_this_box_without_a_kilnd_is_a_status() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut link = Link::new(dir.path().join("home"), Some(dir.path().to_owned()));
        let (tx, mut rx) = unbounded_channel();
        link.survey(&tx);
        let (generation, msg) = next(&mut rx).await;
        assert!(
            generation.is_none() && matches!(&msg, DaemonMsg::ContextsListed(Ok(l)) if l.is_empty()),
            "{msg:?}"
        );
        let (_, msg) = next(&mut rx).await;
        let DaemonMsg::ContextSurveyed(status) = msg else {
            panic!("expected ContextSurveyed, got {msg:?}");
        };
        assert_eq!(status.name, LOCAL);
        assert!(!status.reachable);
        assert!(status.problem.is_some_and(|p| p.contains("no kilnd answers")));
    }
}

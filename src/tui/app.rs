//! The console's state and its one `update` function.
//!
//! Only the UI loop owns an [`App`]; background tasks report through [`Event`]s. `update`
//! changes state (each arm a call into a screen's state) and returns the [`Effect`]s to run:
//! requests to kilnd, a theme to load, quitting. It never blocks and never does I/O, so it is
//! tested without a terminal or a daemon. Key handling lives in `keys.rs`.

use super::action::{Action, Effect, Pending, Screen};
use super::deploy::DeployDialog;
use super::event::{DaemonMsg, Event};
use super::form::LaunchForm;
use super::keymap::Keymap;
use super::request::Request;
use super::state::contexts::ContextsState;
use super::state::gpu::GpuState;
use super::state::jobs::JobsState;
use super::state::models::ModelsState;
use super::state::serving::ServingState;
use super::state::studies::StudiesState;
use super::theme::Theme;
use kiln_core::api::{JobRequest, JobView, JournalEntry, MetricsChunk, StudyView};
use kiln_core::client::ClientError;
use kiln_core::context::LOCAL;
use kiln_core::deploy::Action as Switch;
use kiln_core::jobs::JobState;

/// How the console is connected to kilnd.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Connection {
    /// Not heard from kilnd yet.
    #[default]
    Connecting,
    /// Event stream open.
    Live,
    /// kilnd answers but has no event stream: polling every 2 s.
    Polling,
    /// kilnd cannot be reached (why: for a context, its tunnel or its session); the client
    /// keeps retrying.
    Down(String),
}

/// A modal layer over the screen.
#[derive(Debug, Clone, PartialEq)]
pub enum Overlay {
    Help {
        scroll: u16,
    },
    Palette(String),
    Confirm(Pending),
    /// The deploy dialog: mode, gate figures, final confirm.
    Deploy(DeployDialog),
    Form(LaunchForm),
    /// The path of a study spec being typed (`n` on the studies screen).
    SpecPath(String),
}

/// A line for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

/// All console state.
#[derive(Debug, Clone)]
pub struct App {
    pub screen: Screen,
    pub overlay: Option<Overlay>,
    pub connection: Connection,
    pub readonly: bool,
    pub theme: Theme,
    pub keymap: Keymap,
    pub message: Option<Message>,
    /// `Some` while the `/` filter is being typed.
    pub filter_input: Option<String>,
    pub models: ModelsState,
    pub jobs: JobsState,
    pub gpu: GpuState,
    pub serving: ServingState,
    pub studies: StudiesState,
    /// The context whose kilnd the console shows (`local`: this box's).
    pub context: String,
    /// Bumped on every switch of context: what the old connection still sends is dropped.
    pub generation: u64,
    /// The contexts screen; kept across switches (it shows every box at once).
    pub contexts: ContextsState,
    /// Something changed since the last frame.
    pub dirty: bool,
}

impl App {
    /// A console with nothing loaded yet.
    pub fn new(theme: Theme, keymap: Keymap, readonly: bool) -> Self {
        Self {
            screen: Screen::Models,
            overlay: None,
            connection: Connection::Connecting,
            readonly,
            theme,
            keymap,
            message: None,
            filter_input: None,
            models: ModelsState::default(),
            jobs: JobsState::default(),
            gpu: GpuState::default(),
            serving: ServingState::default(),
            studies: StudiesState::default(),
            context: LOCAL.to_owned(),
            generation: 0,
            contexts: ContextsState::default(),
            dirty: true,
        }
    }

    /// Handles one event; returns what the loop must do next.
    pub fn update(&mut self, event: Event) -> Vec<Effect> {
        match event {
            Event::Key(key) => {
                self.dirty = true;
                self.on_key(key)
            }
            Event::Resized => {
                self.dirty = true;
                Vec::new()
            }
            Event::Terminate => vec![Effect::Quit],
            // From the connection to a context the console has left since.
            Event::Stamped { generation, .. } if generation != self.generation => Vec::new(),
            Event::Daemon(msg) | Event::Stamped { msg, .. } => {
                let quiet = matches!(*msg, DaemonMsg::PollTick | DaemonMsg::SurveyTick)
                    || (matches!(*msg, DaemonMsg::Sample(_)) && self.screen != Screen::Gpu);
                self.dirty |= !quiet;
                self.on_daemon_msg(*msg)
            }
        }
    }

    /// A daemon message: context messages may ask the loop for more than requests.
    fn on_daemon_msg(&mut self, msg: DaemonMsg) -> Vec<Effect> {
        match msg {
            DaemonMsg::ContextOpened { name } => self.context_opened(name),
            DaemonMsg::ContextUnreachable { name, problem } => self.context_unreachable(&name, problem),
            DaemonMsg::ContextsListed(listed) => {
                self.contexts.set_entries(listed);
                Vec::new()
            }
            DaemonMsg::ContextSurveyed(status) => {
                self.contexts.set_status(status);
                Vec::new()
            }
            DaemonMsg::SurveyTick => self.survey_tick(),
            other => self.on_daemon(other).into_iter().map(Effect::Request).collect(),
        }
    }

    /// Shows a message in the status bar.
    pub fn say(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: false,
        });
    }

    /// Shows an error in the status bar.
    pub fn complain(&mut self, text: impl Into<String>) {
        self.message = Some(Message {
            text: text.into(),
            error: true,
        });
    }

    /// Everything worth fetching after (re)connecting.
    pub fn refetch_all(&mut self) -> Vec<Request> {
        self.jobs.epochs.refresh();
        let mut out = vec![
            Request::Models,
            Request::Jobs,
            Request::Telemetry,
            Request::Deployments,
            Request::Canaries,
            Request::Journal,
            Request::Studies,
        ];
        out.extend(self.jobs.wanted(true, false));
        out
    }

    /// The selected trial's metrics, while the studies screen shows its loss curve: its
    /// history once, and (`follow`) new records of a running trial.
    pub fn trial_wanted(&mut self, follow: bool) -> Vec<Request> {
        if self.screen != Screen::Studies {
            return Vec::new();
        }
        let Some((job, active)) = self.studies.trial_job() else {
            return Vec::new();
        };
        self.jobs.want_metrics(&job, active, follow).into_iter().collect()
    }

    fn on_daemon(&mut self, msg: DaemonMsg) -> Vec<Request> {
        match msg {
            DaemonMsg::Connected { live } => {
                self.connection = if live { Connection::Live } else { Connection::Polling };
                self.refetch_all()
            }
            DaemonMsg::Disconnected(reason) => {
                self.connection = Connection::Down(reason);
                Vec::new()
            }
            DaemonMsg::PollTick => self.on_poll(),
            DaemonMsg::Lagged => self.refetch_all(),
            DaemonMsg::RegistryChanged => vec![Request::Models],
            DaemonMsg::Failed { request, error } => self.on_failure(request, error),
            other => self.on_data(other),
        }
    }

    fn on_poll(&mut self) -> Vec<Request> {
        let mut out = vec![Request::Jobs];
        if self.screen == Screen::Gpu && !self.gpu.unavailable {
            out.push(Request::Telemetry);
        }
        if self.screen == Screen::Serving && !self.serving.unavailable {
            out.push(Request::Deployments);
            out.push(Request::Canaries);
        }
        if self.screen == Screen::Studies && !self.studies.unavailable {
            out.push(Request::Studies);
        }
        out.extend(self.jobs.wanted(true, true));
        out.extend(self.trial_wanted(true));
        out
    }

    fn on_data(&mut self, msg: DaemonMsg) -> Vec<Request> {
        match msg {
            DaemonMsg::Models(list) => {
                let mut out = self.models.set_list(list);
                out.extend(self.models.wanted());
                out
            }
            DaemonMsg::ModelDetail(detail) => {
                self.models.set_detail(detail);
                self.models.wanted()
            }
            DaemonMsg::Version(view) => {
                let key = (view.version.model.clone(), view.version.version);
                self.models.versions.insert(key, view);
                self.models.wanted()
            }
            DaemonMsg::Report { digest, report } => {
                self.models.reports.insert(digest, report);
                Vec::new()
            }
            DaemonMsg::Signatures(signatures) => {
                self.models.set_signatures(signatures);
                Vec::new()
            }
            DaemonMsg::Jobs(jobs) => {
                self.jobs.set_jobs(jobs);
                self.jobs.wanted(false, false)
            }
            DaemonMsg::Job(job) => self.on_job(job),
            DaemonMsg::Submitted(job) => self.on_submitted(job),
            DaemonMsg::Metrics { chunk, pushed } => self.on_metrics(&chunk, pushed),
            DaemonMsg::Log { job, chunk } => {
                self.jobs.add_log(&job, &chunk);
                Vec::new()
            }
            msg @ (DaemonMsg::Inspected { .. } | DaemonMsg::SampleLoaded { .. }) => {
                self.models.inspect.take_answer(msg);
                Vec::new()
            }
            other => self.on_other(other),
        }
    }

    /// New metrics; the selected job's log tail follows them.
    fn on_metrics(&mut self, chunk: &MetricsChunk, pushed: bool) -> Vec<Request> {
        self.jobs.add_metrics(chunk, pushed);
        let selected = self.jobs.current().is_some_and(|j| j.id == chunk.job);
        if selected {
            self.jobs.wanted(false, true)
        } else {
            Vec::new()
        }
    }

    fn on_other(&mut self, msg: DaemonMsg) -> Vec<Request> {
        match msg {
            DaemonMsg::Telemetry(t) => self.gpu.set(t),
            DaemonMsg::Sample(s) => {
                self.gpu.push(s);
                // The 1 Hz telemetry tick doubles as the refresh of the serving figures.
                if self.screen == Screen::Serving && !self.serving.unavailable && !self.serving.fetching {
                    self.serving.fetching = true;
                    return vec![Request::Deployments, Request::Canaries];
                }
            }
            DaemonMsg::Deployments(d) => {
                self.serving.fetching = false;
                self.serving.set(d);
            }
            DaemonMsg::Journal(entries) => self.serving.set_journal(entries),
            DaemonMsg::Canaries(canaries) => self.serving.canaries = canaries,
            DaemonMsg::JournalEntry(entry) => return self.on_switched(entry),
            DaemonMsg::Tried(result) => self.serving.tried = Some(result),
            DaemonMsg::Gates(result) => return self.on_gates(*result),
            DaemonMsg::Epochs(list) => self.jobs.epochs.set(list),
            DaemonMsg::EpochRegistered { job, epoch, version } => {
                return self.on_epoch_registered(&job, epoch, &version);
            }
            other => return self.on_study(other),
        }
        Vec::new()
    }

    /// Study answers and events; the selected trial's curve follows the selection.
    fn on_study(&mut self, msg: DaemonMsg) -> Vec<Request> {
        match msg {
            DaemonMsg::Studies(list) => self.studies.set_list(list),
            DaemonMsg::Study(study) => self.studies.upsert(*study),
            DaemonMsg::StudyChanged { request, study } => self.on_study_changed(&request, *study),
            DaemonMsg::Promoted { study, trial, version } => {
                let (model, v) = (&version.model, version.version);
                self.say(format!("registered {model}@{v} (trial {trial} of {study})"));
                return vec![Request::Models];
            }
            DaemonMsg::NotSent { reason, .. } => self.complain(reason),
            _ => {}
        }
        self.trial_wanted(false)
    }

    /// Our own create / stop / resume went through: show the study and say what happened.
    fn on_study_changed(&mut self, request: &Request, study: StudyView) {
        let name = study.name().clone();
        let text = match request {
            Request::CreateStudy { .. } => format!(
                "started study {name}: {} trials, {} sampler, early stop {}",
                study.spec.budget.trials, study.spec.sampler, study.spec.early_stop
            ),
            Request::StopStudy(_) => format!(
                "stopped study {name}; {} resumes it",
                self.keymap.hint(Action::Rollback)
            ),
            _ => format!("resumed study {name}"),
        };
        self.say(text);
        self.studies.upsert(study);
        self.studies.select_name(&name);
    }

    /// A deploy, rollback or canary step happened: say so and refresh what it changed.
    fn on_switched(&mut self, entry: JournalEntry) -> Vec<Request> {
        let (model, to) = (&entry.model, entry.to);
        let candidate = entry.candidate.unwrap_or(to);
        let what = match entry.action {
            Switch::Rollback => format!("rolled back {model}@{to}"),
            Switch::Deploy => format!("deployed {model}@{to}"),
            Switch::Canary => match self.serving.sent_percent(model, candidate) {
                Some(p) => format!("canary of {model}@{candidate} started: {p}% of requests"),
                None => format!("canary of {model}@{candidate} started"),
            },
            Switch::Shadow => format!("shadow of {model}@{candidate} started"),
            Switch::Abort if self.serving.canary(model).is_some_and(|c| c.shadow) => {
                format!("shadow ended, in force: {model}@{to}")
            }
            Switch::Abort => format!("canary ended, in force: {model}@{to}"),
        };
        let gates = entry.gates.as_ref().map_or(String::new(), |g| {
            let checks: Vec<String> = g
                .checks
                .iter()
                .map(|c| format!("{} {}", c.name, c.outcome.as_str()))
                .collect();
            let forced = if g.forced { ", forced" } else { "" };
            format!(" · gates: {}{forced}", checks.join(", "))
        });
        self.say(format!("{what}{gates}"));
        self.serving.push_entry(entry);
        vec![Request::Deployments, Request::Canaries, Request::Models]
    }

    fn on_job(&mut self, job: JobView) -> Vec<Request> {
        let finished_now = job.status.state == JobState::Succeeded
            && self
                .jobs
                .jobs
                .iter()
                .flatten()
                .any(|j| j.id == job.id && j.status.state != JobState::Succeeded);
        let selected = self.jobs.current().is_some_and(|j| j.id == job.id);
        self.jobs.upsert(job);
        let mut out = if selected {
            self.jobs.wanted(false, true)
        } else {
            Vec::new()
        };
        if finished_now {
            out.push(Request::Models);
        }
        out
    }

    fn on_submitted(&mut self, job: JobView) -> Vec<Request> {
        let id = job.id.clone();
        let what = match &job.spec.request {
            JobRequest::Train(t) => format!("{} {} → {}", t.arch, t.data, t.model),
            JobRequest::Eval(e) => format!("{} {} on {}", job.spec.request.kind(), e.reference, e.data),
            request @ JobRequest::Compress(_) => request.subject(),
        };
        self.say(format!("queued job {id} ({what})"));
        self.jobs.filter.clear();
        self.jobs.upsert(job);
        self.jobs.select_id(&id);
        self.screen = Screen::Jobs;
        self.jobs.wanted(false, false)
    }

    fn on_failure(&mut self, request: Request, error: ClientError) -> Vec<Request> {
        let missing = error.is_not_found();
        match &request {
            Request::Metrics { job, .. } => self.jobs.request_failed(job, false),
            Request::Log { job, .. } => {
                self.jobs.request_failed(job, true);
                self.jobs.log_unavailable |= missing;
            }
            Request::Telemetry => self.gpu.unavailable |= missing,
            Request::Deployments | Request::Journal => {
                self.serving.fetching = false;
                self.serving.unavailable |= missing;
            }
            Request::Report(_) => self.models.reports_unavailable |= missing,
            Request::Inspect { .. } | Request::Sample { .. } => self.models.inspect.request_failed(&request, &error),
            // The badges are extra: the versions list stands without them, and the previous
            // answer (if any) stays shown until a refetch succeeds.
            Request::Signatures => {}
            Request::Model(m) if missing => self.models.drop_detail(m),
            Request::SubmitJob(_) => self.complain(format!("launch failed: {error}")),
            Request::CancelJob(id) => self.complain(format!("cancel {id} failed: {error}")),
            Request::Deploy { model, version, .. } => {
                self.complain(format!("deploy {model}@{version} failed: {error}"))
            }
            Request::CheckGates { model, version } => return self.gates_unavailable(model, *version, &error),
            Request::Epochs(job) => self.jobs.epochs.failed(job, missing),
            Request::RegisterEpoch { job, epoch } => {
                self.complain(format!("registering epoch {epoch} of {job} failed: {error}"))
            }
            Request::Rollback { model, .. } => self.complain(format!("rollback of {model} failed: {error}")),
            // The canaries are extra: the previous list stays shown until a refetch succeeds.
            Request::Canaries => {}
            Request::PromoteCanary(model) => self.complain(format!("promoting the canary of {model} failed: {error}")),
            Request::AbortCanary(model) => self.complain(format!("aborting the canary of {model} failed: {error}")),
            Request::DeleteVersion { model, version } => {
                self.complain(format!("delete {model}@{version} failed: {error}"))
            }
            Request::Try { .. } if missing && error.to_string().contains("no such route") => {
                self.complain("this kilnd cannot send test requests yet (no POST /api/v1/deployments/{m}/try)")
            }
            Request::Try { model, .. } => self.complain(format!("test request to {model} failed: {error}")),
            _ => self.on_study_failure(&request, &error),
        }
        Vec::new()
    }

    fn on_study_failure(&mut self, request: &Request, error: &ClientError) {
        // kilnd's message says what is wrong (a 422 names the spec's line); its status adds nothing.
        let reason = match error {
            ClientError::Http { message, .. } => message.clone(),
            other => other.to_string(),
        };
        match request {
            Request::Studies => self.studies.unavailable |= error.is_not_found(),
            Request::CreateStudy { .. } => self.complain(format!("study not started: {reason}")),
            Request::StopStudy(study) => self.complain(format!("stopping {study} failed: {reason}")),
            Request::ResumeStudy(study) => self.complain(format!("resuming {study} failed: {reason}")),
            Request::Promote { study, trial } => {
                self.complain(format!("promoting trial {trial} of {study} failed: {reason}"))
            }
            _ => {}
        }
    }
}

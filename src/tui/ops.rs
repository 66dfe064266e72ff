//! Operations that change something in kilnd. Each checks read-only mode first; the
//! destructive ones (cancel, rollback, delete, stopping a study, promoting a trial, promoting
//! or aborting a canary, registering an epoch) only open a confirm dialog holding a
//! [`Pending`] operation, which the dialog turns into a request once confirmed; a deploy
//! opens the deploy dialog, which asks for the gates first.

use super::action::{Action, Effect, Pending, Screen};
use super::app::{App, Overlay};
use super::deploy::{Confirmed, DeployDialog};
use super::form::{FIRST_ARCH, LaunchForm, first_run_request};
use super::request::Request;
use super::state::models::production;
use kiln_core::api::GateResult;
use kiln_core::client::ClientError;
use kiln_core::jobs::{JobId, JobRequest};
use kiln_core::kinds::{DataSource, DatasetKind};
use kiln_core::names::{Name, Selector};
use kiln_core::registry::VersionManifest;
use kiln_core::study::{StudyState, TrialState};

impl App {
    /// `false` (and says why) in read-only mode.
    fn allowed(&mut self, what: &str) -> bool {
        if self.readonly {
            self.complain(format!(
                "read-only: {what} is disabled (kiln was started with --readonly)"
            ));
        }
        !self.readonly
    }

    fn confirm(&mut self, what: &str, pending: Pending) -> Vec<Effect> {
        if self.allowed(what) {
            self.overlay = Some(Overlay::Confirm(pending));
        }
        Vec::new()
    }

    pub(super) fn deploy(&mut self) -> Vec<Effect> {
        if self.screen != Screen::Models {
            self.complain("select a version on the models screen (1) and press deploy there");
            return Vec::new();
        }
        let Some((model, version)) = self.models.current_version() else {
            self.complain("no version selected");
            return Vec::new();
        };
        let current = self
            .serving
            .rows()
            .iter()
            .find(|d| d.model == model)
            .map(|d| d.version)
            .or_else(|| self.models.current_model().and_then(|m| production(&m.aliases)));
        if !self.allowed("deploy") {
            return Vec::new();
        }
        let dialog = DeployDialog::new(model, version, current);
        let gates = dialog.gates_request();
        self.overlay = Some(Overlay::Deploy(dialog));
        vec![Effect::Request(gates)]
    }

    pub(super) fn delete_version(&mut self) -> Vec<Effect> {
        if self.screen != Screen::Models {
            self.complain("select a version on the models screen (1) to delete it");
            return Vec::new();
        }
        let Some((model, version)) = self.models.current_version() else {
            self.complain("no version selected");
            return Vec::new();
        };
        self.confirm("delete", Pending::DeleteVersion { model, version })
    }

    pub(super) fn rollback(&mut self) -> Vec<Effect> {
        let deployment = match self.screen {
            Screen::Serving => self.serving.current().cloned(),
            _ => {
                let model = self.models.current_model().map(|m| m.name.clone());
                self.serving
                    .rows()
                    .iter()
                    .find(|d| Some(&d.model) == model.as_ref())
                    .cloned()
            }
        };
        let Some(d) = deployment else {
            self.complain("nothing deployed here to roll back (serving screen: 4)");
            return Vec::new();
        };
        let to = self.serving.previous_version(&d.model);
        self.confirm(
            "rollback",
            Pending::Rollback {
                model: d.model,
                from: d.version,
                to,
            },
        )
    }

    /// The selected deployment's canary as `(model, stable, candidate)`; complains when none runs.
    fn selected_canary(&mut self, verb: &str) -> Option<(Name, u32, u32)> {
        if self.screen != Screen::Serving {
            self.complain(format!(
                "select a model with a canary on the serving screen (4) to {verb} it"
            ));
            return None;
        }
        let found = self
            .serving
            .current_canary()
            .map(|c| (c.model.clone(), c.stable, c.candidate));
        if found.is_none() {
            self.complain(format!("the selected model has no canary to {verb}"));
        }
        found
    }

    pub(super) fn promote_canary(&mut self) -> Vec<Effect> {
        let Some((model, stable, candidate)) = self.selected_canary("promote") else {
            return Vec::new();
        };
        let pending = Pending::PromoteCanary {
            model,
            stable,
            candidate,
        };
        self.confirm("promoting a canary", pending)
    }

    pub(super) fn abort_canary(&mut self) -> Vec<Effect> {
        let Some((model, stable, candidate)) = self.selected_canary("abort") else {
            return Vec::new();
        };
        let pending = Pending::AbortCanary {
            model,
            stable,
            candidate,
        };
        self.confirm("aborting a canary", pending)
    }

    pub(super) fn cancel_job(&mut self) -> Vec<Effect> {
        let Some(job) = self.jobs.current().filter(|j| j.is_active()) else {
            self.complain("select a queued or running job to cancel");
            return Vec::new();
        };
        let id = job.id.clone();
        self.confirm("cancel", Pending::CancelJob { id })
    }

    pub(super) fn try_request(&mut self) -> Vec<Effect> {
        let Some(d) = self.serving.current() else {
            self.complain("no deployment selected: deploy a version first (models screen, d)");
            return Vec::new();
        };
        let request = Request::Try {
            model: d.model.clone(),
            index: self.serving.next_sample,
        };
        self.serving.next_sample += 1;
        vec![Effect::Request(request)]
    }

    pub(super) fn new_training(&mut self) -> Vec<Effect> {
        if self.allowed("launching a job") {
            let on_models = self.screen == Screen::Models;
            let arch = on_models
                .then(|| self.models.current_version())
                .flatten()
                .and_then(|(m, v)| self.models.manifest(&m, v).map(|x| x.draft.architecture.name))
                .unwrap_or(FIRST_ARCH);
            self.overlay = Some(Overlay::Form(LaunchForm::train(arch)));
        }
        Vec::new()
    }

    pub(super) fn new_eval(&mut self) -> Vec<Effect> {
        if !self.allowed("launching a job") {
            return Vec::new();
        }
        let selected = match self.screen {
            Screen::Jobs => self
                .jobs
                .current()
                .and_then(|j| j.status.version.as_ref().map(ToString::to_string)),
            _ => self.models.current_version().map(|(m, v)| format!("{m}@{v}")),
        };
        let dataset = self.selected_dataset().unwrap_or(FIRST_ARCH.default_dataset());
        self.overlay = Some(Overlay::Form(LaunchForm::eval(&selected.unwrap_or_default(), dataset)));
        Vec::new()
    }

    /// Opens the optimize form (prune or quantize) for the selected version.
    pub(super) fn optimize(&mut self) -> Vec<Effect> {
        if !self.allowed("launching a job") {
            return Vec::new();
        }
        let Some((model, version)) = self.models.current_version() else {
            self.complain("no version selected: pick the version to prune or quantize");
            return Vec::new();
        };
        let form = LaunchForm::compress(&format!("{model}@{version}"));
        self.overlay = Some(Overlay::Form(form));
        Vec::new()
    }

    /// A job checked against what the console knows: a compression against its parent's
    /// manifest, as kilnd will check it (a parent not loaded here is left to kilnd).
    pub(super) fn check_job(&self, job: JobRequest) -> Result<JobRequest, String> {
        if let JobRequest::Compress(c) = &job
            && let Selector::Version(v) = c.reference.selector
            && let Some(parent) = self.models.manifest(&c.reference.model, v)
        {
            c.check_parent(parent)?;
        }
        Ok(job)
    }

    /// The built-in dataset the selected version was trained on, if it was one.
    fn selected_dataset(&self) -> Option<DatasetKind> {
        let (m, v) = self.models.current_version()?;
        let id = &self.models.manifest(&m, v)?.draft.dataset.as_ref()?.id;
        let kind = id.parse::<DataSource>().ok()?.kind();
        DatasetKind::BUILT_IN.contains(&kind).then_some(kind)
    }

    pub(super) fn train_first(&mut self) -> Vec<Effect> {
        if !self.allowed("training") {
            return Vec::new();
        }
        match first_run_request() {
            Ok(job) => {
                self.say("launching a first cnn on Fashion-MNIST…");
                vec![Effect::Request(Request::SubmitJob(Box::new(job)))]
            }
            Err(e) => {
                self.complain(format!("cannot launch the first run: {e}"));
                Vec::new()
            }
        }
    }

    pub(super) fn stop_study(&mut self) -> Vec<Effect> {
        let Some(study) = self.studies.current().filter(|s| s.state == StudyState::Running) else {
            self.complain("select a running study to stop");
            return Vec::new();
        };
        let pending = Pending::StopStudy {
            study: study.name().clone(),
            running: study.count(TrialState::Running),
        };
        self.confirm("stopping a study", pending)
    }

    pub(super) fn resume_study(&mut self) -> Vec<Effect> {
        let Some(study) = self.studies.current().filter(|s| s.state == StudyState::Stopped) else {
            self.complain("select a stopped study to resume");
            return Vec::new();
        };
        let name = study.name().clone();
        if !self.allowed("resuming a study") {
            return Vec::new();
        }
        self.say(format!("resuming {name}…"));
        vec![Effect::Request(Request::ResumeStudy(name))]
    }

    /// Asks to register the selected trial's best checkpoint (a trial never validated has none).
    pub(super) fn promote_trial(&mut self) -> Vec<Effect> {
        let (Some(study), Some(trial)) = (self.studies.current(), self.studies.current_trial()) else {
            self.complain("select a trial to promote (tab moves to the trials)");
            return Vec::new();
        };
        if trial.values.is_empty() {
            let text = format!("trial {} has no validated epoch yet: nothing to promote", trial.number);
            self.complain(text);
            return Vec::new();
        }
        let pending = Pending::Promote {
            study: study.name().clone(),
            trial: trial.number,
            model: study.spec.base.model.clone(),
        };
        self.confirm("promoting a trial", pending)
    }

    pub(super) fn new_study(&mut self) -> Vec<Effect> {
        if self.allowed("starting a study") {
            self.overlay = Some(Overlay::SpecPath(String::new()));
        }
        Vec::new()
    }
}

/// The deploy dialog's answers and keys, and promote from the curve.
impl App {
    /// The gates' answer: shown in the deploy dialog, or the deploy when enter was waiting.
    pub(super) fn on_gates(&mut self, result: GateResult) -> Vec<Request> {
        let Some(Overlay::Deploy(dialog)) = &mut self.overlay else {
            return Vec::new();
        };
        if !dialog.is_for(&result.model, result.version) {
            return Vec::new();
        }
        let confirmed = dialog.set_gates(result);
        self.deploy_confirmed(confirmed)
    }

    /// kilnd could not run the gates ahead: the dialog says why and a deploy stays possible
    /// (kilnd runs the gates itself then).
    pub(super) fn gates_unavailable(&mut self, model: &Name, version: u32, error: &ClientError) -> Vec<Request> {
        let Some(Overlay::Deploy(dialog)) = &mut self.overlay else {
            return Vec::new();
        };
        if !dialog.is_for(model, version) {
            return Vec::new();
        }
        let why = if error.is_not_found() && error.to_string().contains("no such route") {
            "this kilnd cannot run the gates ahead (no POST /api/v1/deployments/gates)".to_owned()
        } else {
            format!("the gates could not be run ahead: {error}")
        };
        let confirmed = dialog.gates_unavailable(why);
        self.deploy_confirmed(confirmed)
    }

    /// What a key or an answer in the deploy dialog led to: a deploy closes the dialog and
    /// says what was sent.
    pub(super) fn deploy_confirmed(&mut self, confirmed: Confirmed) -> Vec<Request> {
        let Confirmed::Send(request) = confirmed else {
            return Vec::new();
        };
        self.overlay = None;
        if let Request::Deploy {
            model,
            version,
            canary,
            force,
        } = &request
        {
            let what = match canary {
                Some(spec) if spec.shadow => format!("starting a shadow of {model}@{version}"),
                Some(spec) => {
                    self.serving.sent_canary = Some((model.clone(), *version, spec.percent));
                    format!("starting a canary of {model}@{version} ({}% of requests)", spec.percent)
                }
                None => format!("deploying {model}@{version}"),
            };
            let forced = if *force { ", forced past the failed gates" } else { "" };
            self.say(format!("{what}{forced}…"));
        }
        vec![request]
    }

    /// Moves the epoch cursor over the selected run's validation points.
    pub(super) fn move_epoch(&mut self, delta: isize) -> Vec<Effect> {
        if self.screen != Screen::Jobs {
            self.complain("the epoch cursor moves over a run's validation points on the jobs screen (2)");
        } else if !self.jobs.move_epoch_cursor(delta) {
            self.complain("the selected job has no validation point yet");
        }
        Vec::new()
    }

    /// Asks to register the kept checkpoint of the epoch under the cursor.
    pub(super) fn register_epoch(&mut self) -> Vec<Effect> {
        let keys = format!(
            "{} / {}",
            self.keymap.hint(Action::PrevEpoch),
            self.keymap.hint(Action::NextEpoch)
        );
        if self.screen != Screen::Jobs {
            self.complain(format!(
                "move the epoch cursor ({keys}) on the jobs screen (2) and register from there"
            ));
            return Vec::new();
        }
        let Some((job, point, kept)) = self.jobs.cursor_point() else {
            self.complain(format!("move the epoch cursor ({keys}) onto a validation point first"));
            return Vec::new();
        };
        let (id, epoch) = (job.id.clone(), point.epoch);
        let Some(kept) = kept else {
            let note = self.jobs.epochs.list(&id).and_then(|l| l.note.clone());
            let why = note.map_or(String::new(), |n| format!(": {n}"));
            self.complain(format!("epoch {epoch} of {id} has no kept checkpoint{why}"));
            return Vec::new();
        };
        let step = kept.step;
        let Some(model) = self.jobs.epochs.list(&id).map(|l| l.model.clone()) else {
            return Vec::new();
        };
        let pending = Pending::RegisterEpoch {
            job: id,
            model,
            epoch,
            step,
        };
        self.confirm("registering an epoch", pending)
    }

    /// An epoch was registered: say so, refetch the models and select the new version there.
    pub(super) fn on_epoch_registered(&mut self, job: &JobId, epoch: usize, version: &VersionManifest) -> Vec<Request> {
        let (model, v) = (&version.model, version.version);
        self.say(format!(
            "registered {model}@{v} from job {job} epoch {epoch} — deploy it from the models screen"
        ));
        self.models.select_when_listed(model.clone(), v);
        vec![Request::Models]
    }
}

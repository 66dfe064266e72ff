//! What the user asked for ([`Action`], produced by the keymap) and what `update` asks the
//! loop to do in return ([`Effect`]).
//!
//! Actions are imperative and carry no data: the selection in the current screen says what
//! they apply to, and a few keys mean the nearest thing on each screen (`c` cancels a job
//! and stops a study; `o` overlays a run on the jobs screen and opens the optimize form for
//! a version on the models screen; `p` promotes a trial on the studies screen and a canary on
//! the serving screen). Destructive work is never an action of its own:
//! `CancelJob`, `Rollback`, `Promote`, `AbortCanary` and `RegisterEpoch` open a confirm dialog
//! holding a [`Pending`] operation, and only confirming it emits the request; `Deploy` opens
//! the deploy dialog (`deploy.rs`), which holds the deploy until its final confirm (STYLE: two
//! steps for destructive actions).

use super::request::Request;
use super::widgets::grouped;
use kiln_core::jobs::JobId;
use kiln_core::names::Name;

macro_rules! actions {
    ($($variant:ident = $name:literal : $help:literal,)+) => {
        /// A user intent, bound to keys by the keymap.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Action {
            $(#[doc = $help] $variant,)+
        }

        impl Action {
            /// Every action, in help order.
            pub const ALL: &[Action] = &[$(Action::$variant,)+];

            /// The action's name in the config file's `[keymap]` table.
            pub fn name(self) -> &'static str {
                match self { $(Action::$variant => $name,)+ }
            }

            /// One line for the help screen.
            pub fn help(self) -> &'static str {
                match self { $(Action::$variant => $help,)+ }
            }

            /// The action called `name` in the config file.
            pub fn from_name(name: &str) -> Option<Action> {
                match name { $($name => Some(Action::$variant),)+ _ => None }
            }
        }
    };
}

actions! {
    Quit = "quit": "quit kiln (jobs and deployments keep running in kilnd)",
    Help = "help": "show this help",
    Palette = "palette": "command palette (:models :jobs :gpu :serving :studies :ctx NAME :theme NAME :q)",
    Filter = "filter": "filter the current list",
    Back = "back": "close the dialog / leave the pane / clear the filter",
    NextScreen = "next-screen": "next screen (studies: switch between the study list and the trials)",
    PrevScreen = "prev-screen": "previous screen",
    ShowModels = "models": "models screen",
    ShowJobs = "jobs": "jobs screen",
    ShowGpu = "gpu": "GPU screen",
    ShowServing = "serving": "serving screen",
    ShowStudies = "studies": "hyperparameter studies screen",
    ShowContexts = "contexts": "contexts screen: every box's kilnd at a glance; enter or :ctx NAME switches to one, :ctx local back",
    Up = "up": "move up",
    Down = "down": "move down",
    PageUp = "page-up": "move up a page",
    PageDown = "page-down": "move down a page",
    Top = "top": "first row",
    Bottom = "bottom": "last row",
    Select = "select": "open / drill in / confirm",
    FocusNext = "focus-next": "next pane",
    FocusPrev = "focus-prev": "previous pane",
    Refresh = "refresh": "refetch everything from kilnd",
    MarkCompare = "compare": "models: mark this version to compare with the selected one",
    Deploy = "deploy": "models: deploy the selected version: switch now, canary 10% or shadow, after seeing its gates (asks first)",
    Rollback = "rollback": "serving: roll the selected deployment back (asks first); studies: resume the selected stopped study",
    TryRequest = "try": "serving: send a test request from a dataset sample",
    NewTraining = "new-training": "launch a training job (form); studies: start a study from a spec file",
    NewEval = "new-eval": "evaluate the selected version (form)",
    CancelJob = "cancel-job": "jobs: cancel the selected job; studies: stop the selected study (both ask first)",
    Promote = "promote": "studies: register the selected trial's best checkpoint as a version; serving: promote the selected model's canary now (both ask first)",
    AbortCanary = "abort-canary": "serving: abort the selected model's canary, the version in force takes all traffic again (asks first)",
    DeleteVersion = "delete": "models: delete the selected version and its aliases (asks first)",
    ToggleSmoothing = "smoothing": "jobs: EMA smoothing of the loss curve on/off; studies: sort trials by number / best first; models samples: sort by confidence / loss",
    ToggleLogY = "log-y": "jobs: logarithmic loss axis on/off",
    ToggleZoom = "zoom": "jobs: recent / full history",
    ToggleLayers = "layers": "jobs: the layers pane (each layer's gradient norm over the run, update ratio, dead units, exploding/vanishing marks) in place of the loss chart (again: the chart)",
    Overlay = "overlay": "jobs: overlay the selected run on the chart (again: clear); models: optimize the selected version, prune or quantize it into a child version (form)",
    PrevEpoch = "prev-epoch": "jobs: move the epoch cursor to the previous validation point of the chart",
    NextEpoch = "next-epoch": "jobs: move the epoch cursor to the next validation point (● marks a kept checkpoint)",
    RegisterEpoch = "register-epoch": "jobs: register the checkpoint of the epoch under the cursor as a new version (asks first)",
    Hardest = "hardest": "models: the selected version's hardest samples (highest loss) in its latest evaluation",
    Disagree = "disagree": "models: the samples where the version marked with m and the selected one disagree",
}

/// Which screen is showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Screen {
    #[default]
    Models,
    Jobs,
    Gpu,
    Serving,
    Studies,
    Contexts,
}

impl Screen {
    /// Screens in tab order.
    pub const ALL: [Screen; 6] = [
        Screen::Models,
        Screen::Jobs,
        Screen::Gpu,
        Screen::Serving,
        Screen::Studies,
        Screen::Contexts,
    ];

    /// The tab title.
    pub fn title(self) -> &'static str {
        match self {
            Screen::Models => "Models",
            Screen::Jobs => "Jobs",
            Screen::Gpu => "GPU",
            Screen::Serving => "Serving",
            Screen::Studies => "Studies",
            Screen::Contexts => "Contexts",
        }
    }

    fn index(self) -> usize {
        Screen::ALL.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// The screen `delta` tabs away, wrapping.
    pub fn cycle(self, delta: isize) -> Screen {
        let n = Screen::ALL.len() as isize;
        Screen::ALL[((self.index() as isize + delta).rem_euclid(n)) as usize]
    }
}

/// A destructive operation waiting for confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    CancelJob {
        id: JobId,
    },
    Rollback {
        model: Name,
        from: u32,
        to: Option<u32>,
    },
    DeleteVersion {
        model: Name,
        version: u32,
    },
    StopStudy {
        study: Name,
        running: usize,
    },
    Promote {
        study: Name,
        trial: u32,
        model: Name,
    },
    PromoteCanary {
        model: Name,
        stable: u32,
        candidate: u32,
    },
    AbortCanary {
        model: Name,
        stable: u32,
        candidate: u32,
    },
    /// Register the kept checkpoint of a training job's epoch as a version of `model`.
    RegisterEpoch {
        job: JobId,
        model: Name,
        epoch: usize,
        step: u64,
    },
}

impl Pending {
    /// The question the dialog asks.
    pub fn question(&self) -> String {
        match self {
            Pending::CancelJob { id } => format!("Cancel job {id}? A running worker checkpoints first."),
            Pending::Rollback { model, from, to } => match to {
                Some(to) => format!("Roll {model} back from v{from} to v{to}?"),
                None => format!("Roll {model} back from v{from} to the previous version?"),
            },
            Pending::DeleteVersion { model, version } => {
                format!("Delete {model}@{version}? Its manifest and any aliases on it are removed for good.")
            }
            Pending::StopStudy { study, running: 0 } => format!("Stop study {study}? No new trials start."),
            Pending::StopStudy { study, running } => format!(
                "Stop study {study}? No new trials start, and its {running} running trial{} cancelled with a checkpoint.",
                if *running == 1 { " is" } else { "s are" }
            ),
            Pending::Promote { study, trial, model } => {
                format!("Register trial {trial} of {study} (its best epoch) as a new version of {model}?")
            }
            Pending::PromoteCanary {
                model,
                stable,
                candidate,
            } => format!("Promote the canary of {model}: v{candidate} takes all traffic, replacing v{stable}?"),
            Pending::AbortCanary {
                model,
                stable,
                candidate,
            } => format!("Abort the canary of {model}? v{stable} takes all traffic again; v{candidate} stops serving."),
            Pending::RegisterEpoch {
                job,
                model,
                epoch,
                step,
            } => format!(
                "Register epoch {epoch} (step {}) of job {job} as a new version of {model}?",
                grouped(*step)
            ),
        }
    }

    /// The request that carries it out.
    pub fn request(&self) -> Request {
        match self.clone() {
            Pending::CancelJob { id } => Request::CancelJob(id),
            Pending::Rollback { model, to, .. } => Request::Rollback { model, to },
            Pending::DeleteVersion { model, version } => Request::DeleteVersion { model, version },
            Pending::StopStudy { study, .. } => Request::StopStudy(study),
            Pending::Promote { study, trial, .. } => Request::Promote { study, trial },
            Pending::PromoteCanary { model, .. } => Request::PromoteCanary(model),
            Pending::AbortCanary { model, .. } => Request::AbortCanary(model),
            Pending::RegisterEpoch { job, epoch, .. } => Request::RegisterEpoch { job, epoch },
        }
    }
}

/// A side effect `update` asks the loop to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a request to kilnd.
    Request(Request),
    /// Load and switch to a theme.
    LoadTheme(String),
    /// Leave the current context's kilnd and connect to context `name` (`local`: this box's);
    /// what arrives from it is stamped with `generation`.
    SwitchContext { name: String, generation: u64 },
    /// The session of context `name` opened: start talking to it (unless the console has
    /// switched again since `generation`).
    AttachContext { name: String, generation: u64 },
    /// Read config.toml's contexts again and survey each one.
    SurveyContexts,
    /// Leave the console.
    Quit,
}

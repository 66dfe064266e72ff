//! The deploy dialog's state: which way to deploy (switch now, canary 10%, shadow), what the
//! gates found, and what the final confirm sends.
//!
//! As the dialog opens it asks kilnd to run the gates without switching
//! ([`Request::CheckGates`]); the figures arrive as a `DaemonMsg::Gates`. Enter deploys in the
//! chosen mode once the gates passed (pressed earlier, it waits for them); a failed gate
//! refuses it, and only the explicit force key sends `force: true`. When kilnd cannot run the
//! gates ahead (an older daemon), enter sends a plain deploy and kilnd runs them itself. The
//! dialog never sends anything on its own: `update` turns its [`Confirmed`] into a request.

use super::request::Request;
use kiln_core::api::GateResult;
use kiln_core::deploy::CanarySpec;
use kiln_core::names::Name;

/// The dialog's key that deploys past a failed gate (kilnd journals the override).
pub const FORCE_KEY: char = 'f';

/// Share of requests a canary started from the dialog answers, in percent.
pub const CANARY_PERCENT: f64 = 10.0;

/// How a version goes into production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeployMode {
    /// The candidate takes all traffic at once.
    #[default]
    Switch,
    /// The candidate answers [`CANARY_PERCENT`] of requests, then is promoted by itself.
    Canary,
    /// The candidate answers a copy of every request; it waits for promote or abort.
    Shadow,
}

impl DeployMode {
    /// The modes in the dialog's order.
    pub const ALL: [DeployMode; 3] = [DeployMode::Switch, DeployMode::Canary, DeployMode::Shadow];

    /// The choice as the dialog lists it.
    pub fn label(self) -> &'static str {
        match self {
            DeployMode::Switch => "switch now",
            DeployMode::Canary => "canary 10%",
            DeployMode::Shadow => "shadow",
        }
    }

    /// What the mode does to `version`, for the line beside the choice.
    pub fn describe(self, version: u32) -> String {
        match self {
            DeployMode::Switch => format!("v{version} takes all traffic at once"),
            DeployMode::Canary => {
                let minutes = kiln_core::deploy::CANARY_SECONDS / 60;
                format!("v{version} answers {CANARY_PERCENT}% of requests, promoted after {minutes} min")
            }
            DeployMode::Shadow => format!("v{version} answers copies of requests, never promoted by itself"),
        }
    }

    /// The canary the deploy request carries (`None`: switch at once).
    pub fn canary_spec(self) -> Option<CanarySpec> {
        let spec = |percent, shadow| CanarySpec {
            percent,
            shadow,
            seconds: None,
            requests: None,
        };
        match self {
            DeployMode::Switch => None,
            DeployMode::Canary => Some(spec(CANARY_PERCENT, false)),
            DeployMode::Shadow => Some(spec(100.0, true)),
        }
    }

    /// Canary and shadow run beside a version in force; a first deploy can only switch.
    pub fn needs_current(self) -> bool {
        self != DeployMode::Switch
    }
}

/// Where the gates stand.
#[derive(Debug, Clone, PartialEq)]
pub enum Gates {
    /// Asked; kilnd is running them.
    Running,
    /// What they found.
    Done(Box<GateResult>),
    /// kilnd could not run them ahead (why); a deploy has kilnd run them itself.
    Unavailable(String),
}

/// What a key in the dialog led to.
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// Send this deploy and close the dialog.
    Send(Request),
    /// Keep the dialog open (the state says why).
    Wait,
}

/// The deploy dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployDialog {
    pub model: Name,
    pub version: u32,
    /// The version in force, as far as the console knows (the gates' answer corrects it).
    pub current: Option<u32>,
    pub mode: DeployMode,
    pub gates: Gates,
    /// Enter was pressed before the gates answered: deploy as soon as they pass.
    pub armed: bool,
    /// Enter was refused because a gate failed.
    pub refused: bool,
}

impl DeployDialog {
    /// A dialog for `model@version` with the gates asked for.
    pub fn new(model: Name, version: u32, current: Option<u32>) -> Self {
        Self {
            model,
            version,
            current,
            mode: DeployMode::Switch,
            gates: Gates::Running,
            armed: false,
            refused: false,
        }
    }

    /// The request that runs the gates.
    pub fn gates_request(&self) -> Request {
        Request::CheckGates {
            model: self.model.clone(),
            version: self.version,
        }
    }

    /// Whether an answer about `model@version` is this dialog's.
    pub fn is_for(&self, model: &Name, version: u32) -> bool {
        &self.model == model && self.version == version
    }

    /// The question the dialog asks.
    pub fn question(&self) -> String {
        let (model, version) = (&self.model, self.version);
        match self.current {
            Some(c) => format!("Deploy {model}@{version}, replacing {model}@{c} in production?"),
            None => format!("Deploy {model}@{version} to production?"),
        }
    }

    /// Why `mode` cannot be chosen, if it cannot.
    pub fn disabled(&self, mode: DeployMode) -> Option<&'static str> {
        (mode.needs_current() && self.current.is_none()).then_some("needs a version in force (first deploy)")
    }

    /// Moves the choice by `delta`, skipping the modes that cannot be chosen.
    pub fn move_mode(&mut self, delta: isize) {
        let enabled: Vec<DeployMode> = DeployMode::ALL
            .into_iter()
            .filter(|m| self.disabled(*m).is_none())
            .collect();
        let at = enabled.iter().position(|m| *m == self.mode).unwrap_or(0) as isize;
        let to = (at + delta).clamp(0, enabled.len().saturating_sub(1) as isize) as usize;
        self.mode = enabled.get(to).copied().unwrap_or_default();
    }

    /// Takes the gates' answer; returns the deploy to send when enter was waiting for it.
    pub fn set_gates(&mut self, result: GateResult) -> Confirmed {
        self.current = result.current;
        if self.disabled(self.mode).is_some() {
            self.mode = DeployMode::Switch;
        }
        self.gates = Gates::Done(Box::new(result));
        self.after_answer()
    }

    /// kilnd could not run the gates ahead; returns the deploy when enter was waiting for it.
    pub fn gates_unavailable(&mut self, why: String) -> Confirmed {
        self.gates = Gates::Unavailable(why);
        self.after_answer()
    }

    fn after_answer(&mut self) -> Confirmed {
        if self.armed {
            self.armed = false;
            return self.confirm();
        }
        Confirmed::Wait
    }

    /// Enter: deploys when the gates passed or could not be run here; waits for gates still
    /// running; refuses after a failed gate.
    pub fn confirm(&mut self) -> Confirmed {
        match &self.gates {
            Gates::Running => {
                self.armed = true;
                Confirmed::Wait
            }
            Gates::Done(result) if !result.passed => {
                self.refused = true;
                Confirmed::Wait
            }
            Gates::Done(_) | Gates::Unavailable(_) => Confirmed::Send(self.request(false)),
        }
    }

    /// The force key: deploys past a failed gate; does nothing otherwise.
    pub fn force(&self) -> Confirmed {
        match &self.gates {
            Gates::Done(result) if !result.passed => Confirmed::Send(self.request(true)),
            _ => Confirmed::Wait,
        }
    }

    /// Whether a gate failed, so only the force key deploys.
    pub fn failed(&self) -> bool {
        matches!(&self.gates, Gates::Done(result) if !result.passed)
    }

    fn request(&self, force: bool) -> Request {
        Request::Deploy {
            model: self.model.clone(),
            version: self.version,
            canary: self.mode.canary_spec(),
            force,
        }
    }
}

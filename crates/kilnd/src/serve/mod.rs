//! Model serving inside kilnd (DESIGN §4–§6): one loaded version per deployed model behind a
//! dynamic batcher, the Open Inference Protocol over HTTP/JSON, and deploy / rollback.
//!
//! ```text
//! deploy m@v ─▶ load + verify ─▶ warm-up forward ─▶ journal entry ─▶ switch ─▶ production alias
//!                     └─ any failure: the old version keeps serving, the error is returned
//! ```
//!
//! The table of deployments maps a model to an `Arc<Deployment>`. A switch replaces the entry
//! under a write lock held for one pointer swap; requests that already hold the old
//! deployment finish on it, and it is freed when the last of them is answered.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

pub mod batcher;
pub mod canary;
mod fast_json;
pub mod gate;
pub mod http;
pub mod metrics;
pub mod sample;
pub mod tensor;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use burn::tensor::Device;
use kiln_core::deploy::{self, Action, Batching, CanarySpec, CanaryView, DeploymentView, JournalEntry};
use kiln_core::names::Name;
use kiln_core::registry::{Registry, RegistryError, now_rfc3339};

use crate::events::Hub;
use batcher::Deployment;
use kiln_engine::loaded::LoadedModel;
use metrics::Metrics;

/// Limits every inference request is held to.
#[derive(Debug, Clone)]
pub struct Limits {
    pub timeout: Duration,
    pub body_bytes: usize,
    pub batching: Batching,
    /// Forward-pass instances per deployment on the CPU (see [`batcher`]).
    pub cpu_instances: usize,
}

/// Why a deploy or rollback did not happen; the old version (if any) keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("{0}")]
    Refused(String),
    #[error("{0:#}")]
    Failed(anyhow::Error),
}

/// The serving state shared by the inference routes and the control API.
pub struct Server {
    home: PathBuf,
    device: Device,
    pub limits: Limits,
    pub token: Option<String>,
    pub metrics: Arc<Metrics>,
    table: RwLock<HashMap<Name, Arc<Deployment>>>,
    /// One switch at a time, so journal order is switch order.
    switching: Mutex<()>,
    ready: AtomicBool,
    /// Where inference listens, or why it does not.
    pub listener: Mutex<Result<String, String>>,
    /// Deployments the journal says are in force but that could not be restored.
    pub problems: Mutex<Vec<String>>,
    hub: Hub,
    /// Signature checks; in strict mode deploy and restore refuse what does not verify.
    pub signing: Arc<crate::signing::Verifier>,
    /// Test splits the gates have loaded.
    splits: gate::Splits,
    /// Canaries in progress, by model.
    canaries: RwLock<HashMap<Name, Arc<canary::Canary>>>,
    /// Test-only: the share of a canary candidate's requests answered with an injected 500.
    fault_percent: f64,
    faults: AtomicU64,
}

/// How a deploy switches: what the journal says, whether gates run, and whether a canary
/// shares the traffic first.
#[derive(Debug, Clone)]
pub struct Plan {
    pub action: Action,
    pub reason: String,
    pub gates: Gates,
    pub canary: Option<CanarySpec>,
}

/// Whether a switch runs the gates first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gates {
    /// Golden and latency checks on `rows` rows; `force` switches even if one fails.
    Run { rows: usize, force: bool },
    /// A rollback: back to a version that served before, at once.
    Skip,
}

impl Server {
    pub fn new(
        home: PathBuf,
        device: Device,
        limits: Limits,
        token: Option<String>,
        hub: Hub,
        signing: Arc<crate::signing::Verifier>,
    ) -> Self {
        Self {
            signing,
            splits: gate::Splits::default(),
            canaries: RwLock::new(HashMap::new()),
            fault_percent: canary::injected_fault_percent(),
            faults: AtomicU64::new(0),
            home,
            device,
            limits,
            token,
            metrics: Arc::new(Metrics::default()),
            table: RwLock::new(HashMap::new()),
            switching: Mutex::new(()),
            ready: AtomicBool::new(false),
            listener: Mutex::new(Err("not started".into())),
            problems: Mutex::new(Vec::new()),
            hub,
        }
    }

    /// The deployment serving `model`, if any.
    pub fn get(&self, model: &str) -> Option<Arc<Deployment>> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table
            .iter()
            .find(|(name, _)| name.as_str() == model)
            .map(|(_, d)| d.clone())
    }

    /// Whether every deployment in force at start-up has been restored.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    pub fn views(&self) -> Vec<DeploymentView> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        let mut views: Vec<DeploymentView> = table
            .values()
            .map(|d| {
                let mut stats = self.metrics.stats(d.model.as_str(), d.version);
                stats.queue_depth = d.queue_depth();
                DeploymentView {
                    model: d.model.clone(),
                    version: d.version,
                    since: d.since.clone(),
                    batching: d.batching,
                    stats,
                }
            })
            .collect();
        views.sort_by(|a, b| a.model.cmp(&b.model));
        views
    }

    /// `(model, version, queue depth)` of every live deployment, for `/metrics`.
    pub fn queues(&self) -> Vec<(String, u32, usize)> {
        let table = self.table.read().unwrap_or_else(|p| p.into_inner());
        table
            .values()
            .map(|d| (d.model.to_string(), d.version, d.queue_depth()))
            .collect()
    }

    /// Loads and warms `model@version`, then switches to it (journal, table, alias).
    pub fn deploy(
        &self,
        model: &Name,
        version: u32,
        batching: Option<Batching>,
        plan: Plan,
    ) -> Result<JournalEntry, DeployError> {
        let Plan {
            action,
            reason,
            gates,
            canary,
        } = plan;
        let _one_at_a_time = self.switching.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(running) = self.canary(model) {
            return Err(DeployError::Refused(format!(
                "a {} of {model}@{} is running; `kiln canary promote {model}` or `kiln canary abort {model}` first",
                running.kind(),
                running.candidate.version
            )));
        }
        let registry = Registry::open(&self.home)?;
        let manifest = registry.version(model, version)?;
        let signer = self.signing.gate(&registry, &manifest).map_err(DeployError::Refused)?;
        let batching = batching.unwrap_or(self.limits.batching);
        let candidate = manifest.clone();
        let deployment = self.load(&registry, manifest, batching).map_err(DeployError::Failed)?;
        let from = self.get(model.as_str()).map(|d| d.version);
        if let (Some(spec), None) = (canary, from) {
            let (what, flag) = if spec.shadow {
                ("to copy the traffic of", "--shadow")
            } else {
                ("to share the traffic with", "--canary")
            };
            return Err(DeployError::Refused(format!(
                "nothing of {model} is in force {what}; deploy {model}@{version} without {flag}"
            )));
        }
        if canary.is_some() && from == Some(version) {
            return Err(DeployError::Refused(format!("{model}@{version} is already serving")));
        }
        let gates = match gates {
            Gates::Run { rows, force } => Some(self.gate(&registry, &candidate, from, rows, force)?),
            Gates::Skip => None,
        };
        if let (Some(spec), Some(stable)) = (canary, from) {
            if !spec.shadow
                && let Some(serving) = self.get(model.as_str())
                && !serving.signature.same_tensors(&deployment.signature)
            {
                return Err(DeployError::Refused(format!(
                    "{model}@{version} takes or gives other tensors than v{stable} (input {:?}, outputs {:?}), so it cannot answer v{stable}'s clients; deploy it without --canary",
                    deployment.signature.input.shape,
                    deployment
                        .signature
                        .outputs
                        .iter()
                        .map(|o| &o.shape)
                        .collect::<Vec<_>>()
                )));
            }
            return self.start_canary(model, stable, deployment, spec, gates, signer);
        }
        let entry = JournalEntry {
            time: now_rfc3339(),
            model: model.clone(),
            from,
            to: version,
            action,
            reason,
            batching,
            signer,
            gates,
            candidate: None,
        };
        deploy::append(&self.home, &entry)
            .with_context(|| format!("cannot append to {}", deploy::journal_path(&self.home).display()))
            .map_err(DeployError::Failed)?;
        self.table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(model.clone(), Arc::new(deployment));
        self.move_production(&registry, model, version);
        self.hub
            .publish(&kiln_core::api::Event::Deployment(Box::new(entry.clone())));
        Ok(entry)
    }

    /// Switches back to the version before the one in force, or to `to` (which must have
    /// been deployed before).
    pub fn rollback(&self, model: &Name, to: Option<u32>) -> Result<JournalEntry, DeployError> {
        if let Some(running) = self.canary(model) {
            return Err(DeployError::Refused(format!(
                "a {} of {model}@{} is running; `kiln canary abort {model}` ends it (v{} keeps serving)",
                running.kind(),
                running.candidate.version,
                running.stable
            )));
        }
        let (entries, _) = deploy::read(&self.home).map_err(|e| DeployError::Failed(e.into()))?;
        let history: Vec<&JournalEntry> = entries
            .iter()
            .filter(|e| &e.model == model && e.action.is_switch())
            .collect();
        let current = history
            .last()
            .ok_or_else(|| DeployError::Refused(format!("{model} has never been deployed; nothing to roll back")))?;
        let target = match to {
            Some(v) if history.iter().any(|e| e.to == v) => v,
            Some(v) => {
                return Err(DeployError::Refused(format!(
                    "{model}@{v} was never deployed, so it cannot be rolled back to; use `kiln deploy {model}@{v}`"
                )));
            }
            None => current.from.ok_or_else(|| {
                DeployError::Refused(format!(
                    "{model}@{} is the first deployment of {model}; there is nothing earlier to roll back to",
                    current.to
                ))
            })?,
        };
        let reason = format!("rollback from {model}@{}", current.to);
        let plan = Plan {
            action: Action::Rollback,
            reason,
            gates: Gates::Skip,
            canary: None,
        };
        self.deploy(model, target, Some(current.batching), plan)
    }

    /// Runs `model@version`'s gates against the version in force without switching (a dry
    /// run): the version in force, if any, and the report.
    pub fn check_gates(
        &self,
        model: &Name,
        version: u32,
        rows: usize,
    ) -> Result<(Option<u32>, kiln_core::deploy::GateReport), DeployError> {
        let registry = Registry::open(&self.home)?;
        let candidate = registry.version(model, version)?;
        self.signing.gate(&registry, &candidate).map_err(DeployError::Refused)?;
        let from = self.get(model.as_str()).map(|d| d.version);
        let current = from.and_then(|v| registry.version(model, v).ok());
        let report = on_own_thread("gates", || {
            gate::run(
                &registry,
                &self.splits,
                &candidate,
                current.as_ref(),
                &self.device,
                rows,
            )
        })
        .map_err(DeployError::Failed)?;
        Ok((from, report))
    }

    /// Runs the gates for `candidate` against the version in force (`from`); refuses the
    /// switch with the figures when one fails, unless forced.
    fn gate(
        &self,
        registry: &Registry,
        candidate: &kiln_core::registry::VersionManifest,
        from: Option<u32>,
        rows: usize,
        force: bool,
    ) -> Result<kiln_core::deploy::GateReport, DeployError> {
        let current = from.and_then(|v| registry.version(&candidate.model, v).ok());
        let mut report = on_own_thread("gates", || {
            gate::run(registry, &self.splits, candidate, current.as_ref(), &self.device, rows)
        })
        .map_err(DeployError::Failed)?;
        if report.failed().next().is_some() {
            if !force {
                let keeps = from.map_or(String::new(), |v| format!("; v{v} keeps serving"));
                return Err(DeployError::Refused(format!(
                    "{}@{} failed its gates{keeps}:\n{}\ndeploy with --force to switch anyway (the figures are journaled)",
                    candidate.model,
                    candidate.version,
                    report.summary()
                )));
            }
            report.forced = true;
        }
        Ok(report)
    }

    /// Restores every deployment the journal has in force; marks the server ready after.
    pub fn restore(&self) {
        let entries = match deploy::read(&self.home) {
            Ok((entries, problems)) => {
                for p in problems {
                    eprintln!("kilnd: {p}");
                }
                entries
            }
            Err(e) => {
                self.note_problem(format!(
                    "cannot read {}: {e}",
                    deploy::journal_path(&self.home).display()
                ));
                Vec::new()
            }
        };
        for (model, entry) in deploy::in_force(&entries) {
            if matches!(entry.action, Action::Canary | Action::Shadow) {
                self.note_restart_abort(&entry);
            }
            let restored = Registry::open(&self.home).map_err(anyhow::Error::from).and_then(|r| {
                let manifest = r.version(&model, entry.to)?;
                self.signing
                    .gate(&r, &manifest)
                    .map_err(|why| anyhow::anyhow!("not restored: {why}"))?;
                self.load(&r, manifest, entry.batching)
            });
            match restored {
                Ok(deployment) => {
                    eprintln!("kilnd: restored deployment {model}@{}", entry.to);
                    self.table
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(model, Arc::new(deployment));
                }
                Err(e) => self.note_problem(format!("cannot restore {model}@{}: {e:#}", entry.to)),
            }
        }
        self.ready.store(true, Ordering::Relaxed);
    }

    /// A canary that was running when the daemon stopped ends here: the version in force
    /// (its `to`) is restored and serves everything.
    fn note_restart_abort(&self, started: &JournalEntry) {
        let candidate = started.candidate.map_or_else(String::new, |v| format!(" of v{v}"));
        let kind = if started.action == Action::Shadow {
            "shadow"
        } else {
            "canary"
        };
        let entry = JournalEntry {
            time: now_rfc3339(),
            action: Action::Abort,
            reason: format!(
                "kilnd restarted during the {kind}{candidate}; aborted, v{} keeps serving",
                started.to
            ),
            gates: None,
            ..started.clone()
        };
        if let Err(e) = deploy::append(&self.home, &entry) {
            self.note_problem(format!("cannot journal the aborted canary of {}: {e}", started.model));
        }
    }

    /// The canary of `model`, if one runs.
    pub fn canary(&self, model: &Name) -> Option<Arc<canary::Canary>> {
        self.canaries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(model)
            .cloned()
    }

    /// Every canary in progress, with its figures.
    pub fn canary_views(&self) -> Vec<CanaryView> {
        let canaries = self.canaries.read().unwrap_or_else(|p| p.into_inner()).clone();
        canaries.iter().map(|(model, c)| self.canary_view(model, c)).collect()
    }

    /// Each side's figures so far, for the journal entry that ends a canary or shadow.
    pub fn canary_figures(&self, model: &Name, c: &canary::Canary) -> String {
        let view = self.canary_view(model, c);
        let p99 = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2} ms"));
        let candidate = format!(
            "v{} answered {} {} ({} errors; p99 {})",
            view.candidate,
            view.candidate_requests,
            if view.shadow { "copies" } else { "requests" },
            view.candidate_errors,
            p99(view.candidate_p99_ms)
        );
        match view.disagreement() {
            Some(rate) if view.shadow => format!(
                "{candidate}; it disagreed with v{} on {} of {} rows ({:.1}%), v{}'s p99 {}",
                view.stable,
                view.disagreements,
                view.compared,
                rate * 100.0,
                view.stable,
                p99(view.stable_p99_ms)
            ),
            _ => format!(
                "{candidate}, v{} answered {} ({} errors; p99 {})",
                view.stable,
                view.stable_requests,
                view.stable_errors,
                p99(view.stable_p99_ms)
            ),
        }
    }

    fn canary_view(&self, model: &Name, c: &canary::Canary) -> CanaryView {
        let stable = self.metrics.stats(model.as_str(), c.stable);
        let candidate = self.metrics.stats(model.as_str(), c.candidate.version);
        c.view(model, &stable, &candidate)
    }

    /// The deployment a request for `model` (and `version`, when named) goes to: during a
    /// canary, every k-th unversioned request goes to the candidate.
    pub fn route(&self, model: &str, version: Option<&str>) -> Option<Arc<Deployment>> {
        let stable = self.get(model)?;
        let canary = self
            .canaries
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .find(|(name, _)| name.as_str() == model)
            .map(|(_, c)| c.clone());
        let Some(canary) = canary else {
            return Some(stable);
        };
        match version {
            Some(v) if v == canary.candidate.version.to_string() => Some(canary.candidate.clone()),
            Some(_) => Some(stable),
            // A canary's candidate runs its share of the version in force's batches.
            None => Some(stable),
        }
    }

    /// The shadow that gets a copy of a request `deployment` answers, while its window lasts.
    pub fn shadow_for(&self, deployment: &Deployment) -> Option<Arc<canary::Canary>> {
        let canaries = self.canaries.read().unwrap_or_else(|p| p.into_inner());
        if canaries.is_empty() {
            return None;
        }
        canaries
            .get(&deployment.model)
            .filter(|c| c.stable == deployment.version && c.mirroring())
            .cloned()
    }

    /// Test-only (`KILN_TEST_CANARY_FAULT_PERCENT`): whether this answer of a canary's
    /// candidate (`version` of `model`) is replaced by a failure on purpose.
    pub fn injects_fault(&self, model: &Name, version: u32) -> bool {
        if self.fault_percent <= 0.0 {
            return false;
        }
        let is_candidate = self
            .canary(model)
            .is_some_and(|c| !c.spec.shadow && c.candidate.version == version);
        if !is_candidate {
            return false;
        }
        canary::takes(self.faults.fetch_add(1, Ordering::Relaxed), self.fault_percent)
    }

    fn start_canary(
        &self,
        model: &Name,
        stable: u32,
        candidate: Deployment,
        spec: CanarySpec,
        gates: Option<kiln_core::deploy::GateReport>,
        signer: Option<Name>,
    ) -> Result<JournalEntry, DeployError> {
        let bases = (
            self.metrics.stats(model.as_str(), stable),
            self.metrics.stats(model.as_str(), candidate.version),
        );
        let version = candidate.version;
        let until = match (spec.seconds, spec.requests) {
            (_, Some(n)) => format!("{n} of its requests"),
            (Some(s), None) => format!("{s} s"),
            (None, None) => format!("{} s", canary::DEFAULT_SECONDS),
        };
        let (action, reason) = if spec.shadow {
            (
                Action::Shadow,
                format!("shadow of v{version}: a copy of every request for {until}, answers discarded"),
            )
        } else {
            (
                Action::Canary,
                format!("canary of v{version}: {}% of requests for {until}", spec.percent),
            )
        };
        let entry = JournalEntry {
            time: now_rfc3339(),
            model: model.clone(),
            from: Some(stable),
            to: stable,
            action,
            reason,
            batching: candidate.batching,
            signer: signer.clone(),
            gates: gates.clone(),
            candidate: Some(version),
        };
        deploy::append(&self.home, &entry)
            .with_context(|| format!("cannot append to {}", deploy::journal_path(&self.home).display()))
            .map_err(DeployError::Failed)?;
        let candidate = Arc::new(candidate);
        if !spec.shadow
            && let Some(serving) = self.get(model.as_str())
        {
            serving.host(&candidate, spec.percent);
        }
        let canary = canary::Canary::new(candidate, stable, spec, bases, gates, signer);
        self.canaries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(model.clone(), Arc::new(canary));
        self.hub
            .publish(&kiln_core::api::Event::Deployment(Box::new(entry.clone())));
        Ok(entry)
    }

    /// Watches `model`'s canary until it ends: rolls it back when it is worse, promotes it
    /// when it reaches its end.
    pub fn watch_canary(self: &Arc<Self>, model: Name) {
        let server = self.clone();
        let watched = model.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("canary-{model}"))
            .spawn(move || {
                let model = watched;
                loop {
                    std::thread::sleep(canary::WATCH);
                    let Some(c) = server.canary(&model) else { return };
                    let view = server.canary_view(&model, &c);
                    let ended = match c.judge(&view) {
                        canary::Verdict::Continue => continue,
                        canary::Verdict::Promote(why) => server.promote(&model, &why),
                        canary::Verdict::RollBack(why) => server.abort(&model, &why),
                    };
                    if let Err(e) = ended {
                        server.note_problem(format!("the canary of {model} could not end: {e}"));
                    }
                    return;
                }
            });
        if let Err(e) = spawned {
            self.note_problem(format!("cannot watch the canary of {model}: {e}"));
        }
    }

    /// Ends `model`'s canary by switching to its candidate (a `deploy` entry).
    pub fn promote(&self, model: &Name, reason: &str) -> Result<JournalEntry, DeployError> {
        let _one_at_a_time = self.switching.lock().unwrap_or_else(|p| p.into_inner());
        let c = self.take_canary(model)?;
        let entry = JournalEntry {
            time: now_rfc3339(),
            model: model.clone(),
            from: Some(c.stable),
            to: c.candidate.version,
            action: Action::Deploy,
            reason: reason.to_owned(),
            batching: c.candidate.batching,
            signer: c.signer.clone(),
            gates: c.gates.clone(),
            candidate: None,
        };
        if let Err(e) = deploy::append(&self.home, &entry) {
            // Not journaled, not switched: the canary goes on as it was.
            self.canaries
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(model.clone(), c);
            return Err(DeployError::Failed(anyhow::anyhow!(
                "cannot append to the journal: {e}"
            )));
        }
        c.ended.store(true, Ordering::Relaxed);
        let replaced = self
            .table
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(model.clone(), c.candidate.clone());
        if let Some(old) = replaced {
            old.unhost();
        }
        if let Ok(registry) = Registry::open(&self.home) {
            self.move_production(&registry, model, c.candidate.version);
        }
        self.hub
            .publish(&kiln_core::api::Event::Deployment(Box::new(entry.clone())));
        Ok(entry)
    }

    /// Ends `model`'s canary without promoting it (an `abort` entry); the version in force
    /// answers everything again.
    pub fn abort(&self, model: &Name, reason: &str) -> Result<JournalEntry, DeployError> {
        let _one_at_a_time = self.switching.lock().unwrap_or_else(|p| p.into_inner());
        let c = self.take_canary(model)?;
        c.ended.store(true, Ordering::Relaxed);
        if let Some(serving) = self.get(model.as_str()) {
            serving.unhost();
        }
        let entry = JournalEntry {
            time: now_rfc3339(),
            model: model.clone(),
            from: Some(c.stable),
            to: c.stable,
            action: Action::Abort,
            reason: reason.to_owned(),
            batching: c.candidate.batching,
            signer: None,
            gates: None,
            candidate: Some(c.candidate.version),
        };
        deploy::append(&self.home, &entry)
            .with_context(|| format!("cannot append to {}", deploy::journal_path(&self.home).display()))
            .map_err(DeployError::Failed)?;
        self.hub
            .publish(&kiln_core::api::Event::Deployment(Box::new(entry.clone())));
        Ok(entry)
    }

    fn take_canary(&self, model: &Name) -> Result<Arc<canary::Canary>, DeployError> {
        self.canaries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(model)
            .ok_or_else(|| DeployError::Refused(format!("no canary or shadow of {model} is running")))
    }

    fn note_problem(&self, problem: String) {
        eprintln!("kilnd: {problem}");
        self.problems.lock().unwrap_or_else(|p| p.into_inner()).push(problem);
    }

    fn load(
        &self,
        registry: &Registry,
        manifest: kiln_core::registry::VersionManifest,
        batching: Batching,
    ) -> anyhow::Result<Deployment> {
        let what = format!("{}@{}", manifest.model, manifest.version);
        // A GPU runs one forward pass at a time anyway.
        let instances = if self.device == Device::libtorch() {
            self.limits.cpu_instances
        } else {
            1
        };
        on_own_thread(&format!("load-{what}"), || {
            let loaded = LoadedModel::from_registry(registry, manifest, self.device.clone())
                .with_context(|| format!("cannot load {what}"))?;
            Deployment::start(loaded, batching, instances, self.metrics.clone())
                .with_context(|| format!("{what} failed its warm-up"))
        })
    }

    /// Points `production` at the version now serving. The journal is the record of truth, so
    /// a failure here is reported but does not undo the switch.
    fn move_production(&self, registry: &Registry, model: &Name, version: u32) {
        let moved = Name::new("production")
            .map_err(RegistryError::from)
            .and_then(|production| registry.set_alias(&registry.lock()?, model, &production, version));
        if let Err(e) = moved {
            self.note_problem(format!(
                "{model}@{version} serves, but moving its production alias failed: {e}"
            ));
        }
    }
}

/// Runs `work` (which runs libtorch ops) on a thread of its own that ends with it. libtorch's
/// OpenMP keeps a pool of worker threads for each thread that ran a parallel op, for as long
/// as that thread lives. While the pools hold more threads than there are cores, libgomp lets
/// every worker spin only 100 times before it sleeps, whatever GOMP_SPINCOUNT says, so each
/// parallel region of the serving threads' forward passes pays a futex wake-up: a pool left on
/// a tokio blocking thread (kept alive by the telemetry tick) cost ~6 sleeps per one-row
/// forward pass. Loading a model and the gates' forward passes run here.
fn on_own_thread<T: Send>(name: &str, work: impl FnOnce() -> anyhow::Result<T> + Send) -> anyhow::Result<T> {
    std::thread::scope(|scope| {
        let running = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn_scoped(scope, work)
            .with_context(|| format!("cannot start a thread for {name}"))?;
        running.join().unwrap_or_else(|panic| {
            let why = batcher::panic_message(&*panic).unwrap_or("no message");
            Err(anyhow::anyhow!("{name} panicked: {why}"))
        })
    })
}

//! The jobs screen's data: the job list, each watched run's bounded loss series, validation
//! points, layer statistics (`layers.rs`) and log tail, the chart toggles, the kept epochs and
//! the epoch cursor (`epochs.rs`), and progress/ETA arithmetic.
//!
//! Metric records arrive both from `GET …/metrics?since=` and from SSE `metrics` events, so
//! they may overlap; a record is kept only when its step is past the last one seen for its
//! kind, which makes the two sources safe to mix.

use std::collections::{HashMap, HashSet, VecDeque};

use super::epochs::Epochs;
use super::layers::LayerHistory;
use crate::tui::request::Request;
use crate::tui::series::{Ema, Series, Zoom};
use kiln_core::api::{EpochCheckpoint, JobRequest, JobView, LogChunk, MetricsChunk};
use kiln_core::jobs::{JobId, JobState, MetricRecord};
use kiln_core::kinds::MetricKind;

/// Lines of log kept per run.
pub const LOG_LINES: usize = 400;
/// Validation records kept per run for the epoch cursor (one per epoch: far more than runs have).
pub const VAL_POINTS: usize = 10_000;
/// EMA weight of the newest training-loss value.
const EMA_ALPHA: f64 = 0.1;

/// One run's live data.
#[derive(Debug, Clone)]
pub struct RunData {
    pub train: Series,
    pub train_ema: Series,
    pub val: Series,
    ema: Ema,
    last_step: HashMap<MetricKind, u64>,
    pub next: u64,
    pub first_time: Option<f64>,
    pub last_train: Option<MetricRecord>,
    pub last_val: Option<MetricRecord>,
    /// Every validation record, oldest first: the points the epoch cursor moves over.
    pub val_points: Vec<MetricRecord>,
    /// Steps in one epoch, learnt from the first validation record.
    pub steps_per_epoch: Option<f64>,
    pub log: VecDeque<String>,
    pub log_next: u64,
    log_partial: String,
    /// History fetched over HTTP (SSE alone only brings what happened since connecting).
    pub metrics_loaded: bool,
    pub log_loaded: bool,
    /// Per-layer statistics (`layers` records) for the layers pane.
    pub layers: LayerHistory,
}

impl Default for RunData {
    fn default() -> Self {
        Self {
            train: Series::default(),
            train_ema: Series::default(),
            val: Series::default(),
            ema: Ema::new(EMA_ALPHA),
            last_step: HashMap::new(),
            next: 0,
            first_time: None,
            last_train: None,
            last_val: None,
            val_points: Vec::new(),
            steps_per_epoch: None,
            log: VecDeque::new(),
            log_next: 0,
            log_partial: String::new(),
            metrics_loaded: false,
            log_loaded: false,
            layers: LayerHistory::default(),
        }
    }
}

impl RunData {
    /// Folds in metric records, skipping any already seen.
    pub fn add_records(&mut self, records: &[MetricRecord]) {
        for r in records {
            let last = self.last_step.get(&r.kind).copied();
            if last.is_some_and(|s| r.step <= s) {
                continue;
            }
            self.last_step.insert(r.kind, r.step);
            self.first_time.get_or_insert(r.time);
            self.add_record(r);
        }
    }

    fn add_record(&mut self, r: &MetricRecord) {
        if r.kind == MetricKind::Layers {
            self.layers.add(r);
            return;
        }
        let x = r.step as f64;
        if let Some(loss) = r.train_loss {
            self.train.push(x, loss);
            if loss.is_finite() {
                self.train_ema.push(x, self.ema.update(loss));
            }
            self.last_train = Some(r.clone());
        }
        if let Some(loss) = r.val_loss {
            self.val.push(x, loss);
            if self.steps_per_epoch.is_none() && r.epoch > 0 {
                self.steps_per_epoch = Some(r.step as f64 / r.epoch as f64);
            }
            self.last_val = Some(r.clone());
            if self.val_points.len() < VAL_POINTS {
                self.val_points.push(r.clone());
            }
        }
    }

    /// Appends log text, keeping the last [`LOG_LINES`] complete lines.
    pub fn add_log(&mut self, chunk: &LogChunk) {
        self.log_next = chunk.next.max(self.log_next);
        self.log_partial.push_str(&chunk.text);
        let mut rest = std::mem::take(&mut self.log_partial);
        while let Some(i) = rest.find('\n') {
            let line: String = rest.drain(..=i).collect();
            self.log.push_back(line.trim_end().to_owned());
            if self.log.len() > LOG_LINES {
                self.log.pop_front();
            }
        }
        self.log_partial = rest;
    }

    /// Training samples per second, from the latest record.
    pub fn samples_per_sec(&self) -> Option<f64> {
        self.last_train.as_ref()?.samples_per_sec
    }
}

/// Chart toggles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChartOptions {
    pub smoothing: bool,
    pub log_y: bool,
    pub zoom: Zoom,
    /// The layers pane takes the loss chart's place.
    pub layers: bool,
}

/// Everything the jobs screen shows.
#[derive(Debug, Clone, Default)]
pub struct JobsState {
    /// `None` until the first answer; newest first.
    pub jobs: Option<Vec<JobView>>,
    pub runs: HashMap<JobId, RunData>,
    pub selected: usize,
    pub filter: String,
    pub chart: ChartOptions,
    pub overlay: Option<JobId>,
    /// The daemon has no log route (404).
    pub log_unavailable: bool,
    /// Kept epoch checkpoints and the epoch cursor.
    pub epochs: Epochs,
    inflight: HashSet<(JobId, bool)>,
}

/// What a job produces or scores, as the list shows it: `fmnist-cnn` or `fmnist-cnn@3`.
pub fn subject(job: &JobView) -> String {
    match &job.spec.request {
        JobRequest::Train(t) => t.model.to_string(),
        JobRequest::Eval(e) => e.reference.to_string(),
        JobRequest::Compress(c) => c.reference.to_string(),
    }
}

/// The architecture a job trains, or its kind (`eval`) for an evaluation.
pub fn arch_or_kind(job: &JobView) -> String {
    match &job.spec.request {
        JobRequest::Train(t) => t.arch.to_string(),
        request @ (JobRequest::Eval(_) | JobRequest::Compress(_)) => request.kind().to_string(),
    }
}

/// Epochs a job trains (0 for an evaluation).
fn epochs(job: &JobView) -> usize {
    job.spec.request.epochs()
}

impl JobsState {
    /// Jobs passing the filter.
    pub fn visible(&self) -> Vec<&JobView> {
        let query = self.filter.to_lowercase();
        let terms: Vec<&str> = query.split_whitespace().collect();
        self.jobs
            .iter()
            .flatten()
            .filter(|j| {
                let hay = format!(
                    "{} {} {} {} {}",
                    j.id,
                    j.status.state,
                    subject(j),
                    arch_or_kind(j),
                    j.spec.request.subject()
                );
                terms.iter().all(|t| hay.to_lowercase().contains(t))
            })
            .collect()
    }

    /// The selected job.
    pub fn current(&self) -> Option<&JobView> {
        self.visible().get(self.selected).copied()
    }

    /// Replaces the list.
    pub fn set_jobs(&mut self, mut jobs: Vec<JobView>) {
        let keep = self.current().map(|j| j.id.clone());
        for job in &jobs {
            self.note_end(job);
        }
        jobs.sort_by(|a, b| b.id.cmp(&a.id));
        self.jobs = Some(jobs);
        self.reselect(keep);
    }

    /// A job that was active and no longer is gets its kept epochs asked for again.
    fn note_end(&mut self, job: &JobView) {
        let was_active = self.jobs.iter().flatten().any(|j| j.id == job.id && j.is_active());
        if was_active && !job.is_active() {
            self.epochs.job_ended(&job.id);
        }
    }

    /// Inserts or updates one job.
    pub fn upsert(&mut self, job: JobView) {
        let keep = self.current().map(|j| j.id.clone());
        self.note_end(&job);
        let jobs = self.jobs.get_or_insert_with(Vec::new);
        match jobs.iter_mut().find(|j| j.id == job.id) {
            Some(slot) => *slot = job,
            None => {
                jobs.push(job);
                jobs.sort_by(|a, b| b.id.cmp(&a.id));
            }
        }
        self.reselect(keep);
    }

    /// Selects the job with `id` when visible.
    pub fn select_id(&mut self, id: &JobId) {
        if let Some(i) = self.visible().iter().position(|j| &j.id == id) {
            self.selected = i;
        }
    }

    fn reselect(&mut self, keep: Option<JobId>) {
        if let Some(id) = keep {
            self.select_id(&id);
        }
        self.selected = self.selected.min(self.visible().len().saturating_sub(1));
    }

    /// Moves the selection.
    pub fn move_selection(&mut self, delta: isize) {
        let n = self.visible().len();
        self.selected = (self.selected as isize + delta).clamp(0, n.saturating_sub(1) as isize) as usize;
    }

    /// Folds a metrics chunk into its run: fetched history, or `pushed` by the event stream.
    pub fn add_metrics(&mut self, chunk: &MetricsChunk, pushed: bool) {
        let job = &chunk.job;
        if !pushed {
            self.inflight.remove(&(job.clone(), false));
        }
        // A pushed (SSE) chunk only extends a history already fetched over HTTP: kept
        // earlier, its later steps would make the older records look like repeats. Runs
        // nobody looked at yet are not kept at all; selecting one fetches its history.
        if pushed && !self.runs.get(job).is_some_and(|r| r.metrics_loaded) {
            return;
        }
        let run = self.runs.entry(job.clone()).or_default();
        run.add_records(&chunk.records);
        run.metrics_loaded = true;
        run.next = run.next.max(chunk.next);
    }

    /// Folds log text into its run.
    pub fn add_log(&mut self, job: &JobId, chunk: &LogChunk) {
        self.inflight.remove(&(job.clone(), true));
        let run = self.runs.entry(job.clone()).or_default();
        run.log_loaded = true;
        run.add_log(chunk);
    }

    /// A request for `job` failed: allow asking again.
    pub fn request_failed(&mut self, job: &JobId, log: bool) {
        self.inflight.remove(&(job.clone(), log));
    }

    /// Metrics and log requests the selected and overlaid runs need: whatever was never
    /// loaded, plus fresh metrics / log of an active job when `follow_*` asks for them; and
    /// the selected training job's kept epochs when they are due.
    pub fn wanted(&mut self, follow_metrics: bool, follow_log: bool) -> Vec<Request> {
        let mut ids: Vec<(JobId, bool)> = self
            .current()
            .map(|j| (j.id.clone(), j.is_active()))
            .into_iter()
            .collect();
        if let Some(o) = &self.overlay {
            ids.push((o.clone(), false));
        }
        let mut out = Vec::new();
        for (id, active) in ids {
            out.extend(self.want_metrics(&id, active, follow_metrics));
            let run = self.runs.get(&id);
            let log_loaded = run.is_some_and(|r| r.log_loaded);
            let want_log = !log_loaded || (follow_log && active);
            if want_log && !self.log_unavailable && self.inflight.insert((id.clone(), true)) {
                let since = run.map_or(0, |r| r.log_next);
                out.push(Request::Log { job: id, since });
            }
        }
        out.extend(self.want_epochs());
        out
    }

    /// The selected training job's kept epochs, once its metric history is in.
    fn want_epochs(&mut self) -> Option<Request> {
        let job = self.current().filter(|j| j.spec.request.as_train().is_some())?;
        let id = job.id.clone();
        let run = self.runs.get(&id).filter(|r| r.metrics_loaded)?;
        let points = run.val_points.len();
        self.epochs.want(&id, points)
    }

    /// The selected job's validation points (oldest first).
    pub fn val_points(&self) -> &[MetricRecord] {
        self.current()
            .and_then(|j| self.runs.get(&j.id))
            .map_or(&[], |r| r.val_points.as_slice())
    }

    /// Moves the epoch cursor over the selected job's validation points; `false` when it has none.
    pub fn move_epoch_cursor(&mut self, delta: isize) -> bool {
        let Some(id) = self.current().map(|j| j.id.clone()) else {
            return false;
        };
        let points = self.val_points().len();
        self.epochs.move_cursor(&id, points, delta).is_some()
    }

    /// The validation point under the cursor on the selected job, with its kept checkpoint
    /// when it is promotable.
    pub fn cursor_point(&self) -> Option<(&JobView, &MetricRecord, Option<&EpochCheckpoint>)> {
        let job = self.current()?;
        let point = self.val_points().get(self.epochs.cursor(&job.id)?)?;
        Some((job, point, self.epochs.kept(&job.id, point.epoch)))
    }

    /// The metrics request run `id` needs, if any: its history when never loaded, or (when
    /// `follow` and the job is `active`) the records since the last fetch. At most one
    /// request per run is in flight.
    pub fn want_metrics(&mut self, id: &JobId, active: bool, follow: bool) -> Option<Request> {
        let run = self.runs.get(id);
        let loaded = run.is_some_and(|r| r.metrics_loaded);
        if (loaded && !(follow && active)) || !self.inflight.insert((id.clone(), false)) {
            return None;
        }
        let since = run.filter(|r| r.metrics_loaded).map_or(0, |r| r.next);
        Some(Request::Metrics { job: id.clone(), since })
    }

    /// `⚠ job <id> layer <name>: exploding gradients (…)` for the selected job, or else a
    /// running one, whose gradients explode: from the run's `layers` records when they are
    /// loaded, else from the warning the worker made the job's message.
    pub fn layer_warning(&self) -> Option<String> {
        let exploding = |j: &JobView| self.runs.get(&j.id)?.layers.watch.exploding().map(|w| w.warning());
        let selected = self.current().and_then(|j| Some((j, exploding(j)?)));
        let running = || {
            self.jobs
                .iter()
                .flatten()
                .filter(|j| j.status.state == JobState::Running)
                .find_map(|j| {
                    let warned = kiln_core::layers::is_warning(&j.status.message).then(|| j.status.message.clone());
                    Some((j, exploding(j).or(warned)?))
                })
        };
        let (job, warning) = selected.or_else(running)?;
        Some(format!("⚠ job {} {warning}", job.id))
    }

    /// Marks (or clears) the selected job as the chart's overlay.
    pub fn toggle_overlay(&mut self) -> Option<String> {
        let id = self.current()?.id.clone();
        if self.overlay.is_some() {
            self.overlay = None;
            return Some("overlay cleared".into());
        }
        self.overlay = Some(id.clone());
        Some(format!("overlaying {id}; select another job to compare curves"))
    }
}

/// Fraction done (0–1) of a job, and its ETA in seconds when it can be estimated.
///
/// The step is the later of the job status and the newest metric record (the status may
/// lag); the total comes from the status's `total_steps`, else from the steps of the first
/// epoch once validation has run, else whole epochs are counted.
pub fn progress(job: &JobView, run: Option<&RunData>) -> (f64, Option<f64>) {
    if job.status.state == JobState::Succeeded {
        return (1.0, None);
    }
    let last = run.and_then(|r| r.last_train.as_ref());
    let step = last.map_or(0, |r| r.step).max(job.status.step) as f64;
    let epochs = epochs(job).max(1) as f64;
    let total = job
        .status
        .total_steps
        .map(|t| t as f64)
        .or_else(|| run.and_then(|r| r.steps_per_epoch).map(|spe| spe * epochs))
        .filter(|t| *t > 0.0);
    let fraction = match total {
        Some(total) => step / total,
        None => job.status.epoch.max(last.map_or(0, |r| r.epoch)) as f64 / epochs,
    }
    .clamp(0.0, 1.0);
    let eta = run.and_then(|r| {
        let elapsed = r.last_train.as_ref()?.time - r.first_time?;
        (job.is_active() && fraction > 0.0 && elapsed > 0.0).then(|| elapsed * (1.0 - fraction) / fraction)
    });
    (fraction, eta)
}

/// `1h02m`, `3m05s`, `42s`.
pub fn format_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

//! Promote from the curve: each training job's kept epoch checkpoints (`GET /jobs/{id}/epochs`),
//! when to ask for them again, and the cursor over the selected run's validation points.
//!
//! A job's list is asked for once its metric history is in, and again when a validation point
//! arrives after the last answer or the job ends (its last checkpoints are kept then). A kilnd
//! without the route, or a job that is not a training, answers 404: the job then simply has
//! no promotable point. At most one request per job is in flight.

use std::collections::HashMap;

use crate::tui::request::Request;
use kiln_core::api::{EpochCheckpoint, EpochList};
use kiln_core::jobs::JobId;

/// One job's list and the bookkeeping of fetching it.
#[derive(Debug, Clone, Default)]
struct Fetch {
    /// kilnd's last answer (`None`: not yet, or no such route / not a training job).
    list: Option<EpochList>,
    /// Validation points the run had when the list was last asked for.
    asked_at: Option<usize>,
    /// Ask again (the job ended).
    stale: bool,
    inflight: bool,
}

/// Kept checkpoints by job, and the epoch cursor.
#[derive(Debug, Clone, Default)]
pub struct Epochs {
    by_job: HashMap<JobId, Fetch>,
    /// The job the cursor is on, and the index of its validation point.
    cursor: Option<(JobId, usize)>,
}

impl Epochs {
    /// The request job `id` needs, given the validation points its run has now.
    pub fn want(&mut self, id: &JobId, val_points: usize) -> Option<Request> {
        let fetch = self.by_job.entry(id.clone()).or_default();
        let due = fetch.stale || fetch.asked_at.is_none_or(|n| val_points > n);
        if !due || fetch.inflight {
            return None;
        }
        fetch.inflight = true;
        fetch.stale = false;
        fetch.asked_at = Some(val_points);
        Some(Request::Epochs(id.clone()))
    }

    /// Takes kilnd's answer.
    pub fn set(&mut self, list: EpochList) {
        let fetch = self.by_job.entry(list.job.clone()).or_default();
        fetch.inflight = false;
        fetch.list = Some(list);
    }

    /// The request failed; a 404 (`missing`) means the job has no kept epochs to offer. Any
    /// other failure keeps the previous answer.
    pub fn failed(&mut self, id: &JobId, missing: bool) {
        let fetch = self.by_job.entry(id.clone()).or_default();
        fetch.inflight = false;
        if missing {
            fetch.list = None;
        }
    }

    /// The job ended: its list is asked for again.
    pub fn job_ended(&mut self, id: &JobId) {
        if let Some(fetch) = self.by_job.get_mut(id) {
            fetch.stale = true;
        }
    }

    /// Asks for every known list again on the next selection (a refresh).
    pub fn refresh(&mut self) {
        for fetch in self.by_job.values_mut() {
            fetch.stale = true;
        }
    }

    /// kilnd's list for job `id`, once it answered.
    pub fn list(&self, id: &JobId) -> Option<&EpochList> {
        self.by_job.get(id)?.list.as_ref()
    }

    /// The kept checkpoint of `epoch` of job `id`: the point is promotable.
    pub fn kept(&self, id: &JobId, epoch: usize) -> Option<&EpochCheckpoint> {
        self.list(id)?.epochs.iter().find(|e| e.epoch == epoch)
    }

    /// The cursor's validation point index on job `id` (`None`: no cursor on this job).
    pub fn cursor(&self, id: &JobId) -> Option<usize> {
        self.cursor.as_ref().filter(|(job, _)| job == id).map(|(_, i)| *i)
    }

    /// Moves the cursor over job `id`'s `points` validation points. With no cursor on the
    /// job yet, `]` starts at the first point and `[` at the last. `None` when it has none.
    pub fn move_cursor(&mut self, id: &JobId, points: usize, delta: isize) -> Option<usize> {
        let last = points.checked_sub(1)?;
        let to = match self.cursor(id) {
            Some(i) => (i as isize + delta).clamp(0, last as isize) as usize,
            None if delta > 0 => 0,
            None => last,
        };
        self.cursor = Some((id.clone(), to));
        Some(to)
    }
}

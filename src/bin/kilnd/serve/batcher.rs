//! One deployment: a loaded version behind a dynamic batcher.
//!
//! Requests (already validated) wait in a bounded queue; a dedicated thread takes the first,
//! adds whatever else is queued (waiting up to `max_delay_us` for more) up to `max_batch`
//! rows, runs one forward pass and hands each request its rows back. When a batch fails, its
//! requests are retried one by one, so one request can only ever fail itself.
//!
//! The deployment lives as long as someone holds it: the server's table, and every request in
//! flight. When a switch drops it from the table, requests already queued still finish on it;
//! the last one out closes the queue and the thread ends, freeing the model.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use kiln::deploy::Batching;
use kiln::names::Name;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::tensor::{Rows, Signature};
use crate::engine::loaded::LoadedModel;

/// Under load, a batch keeps growing while requests arrive at most this far apart.
const GAP: Duration = Duration::from_micros(250);

/// After a forward pass the thread polls the queue this long (yielding the core to anything
/// runnable) before it sleeps: while requests keep coming, the next one is picked up without
/// a futex wake-up, and the thread, its caches and libtorch's OpenMP team stay warm. It costs
/// nothing when idle and at most this much CPU per batch under load.
const HOT_WAIT: Duration = Duration::from_micros(500);

/// What a request gets back: one output row per input row, or why not.
pub type Answer = Result<Vec<Vec<f32>>, String>;

struct Pending {
    rows: Rows,
    deadline: Instant,
    reply: oneshot::Sender<Answer>,
}

/// A version being served.
pub struct Deployment {
    pub model: Name,
    pub version: u32,
    pub since: String,
    pub batching: Batching,
    pub signature: Signature,
    queue: SyncSender<Pending>,
    depth: Arc<AtomicUsize>,
}

/// Why a request could not join the queue.
pub enum Refused {
    Full,
    Closed,
}

impl Deployment {
    /// Warms `loaded` up with a real forward pass, then starts its batcher thread.
    pub fn start(loaded: LoadedModel, batching: Batching, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let signature = Signature::of(&loaded.arch);
        warm_up(&loaded, &signature)?;
        let (model, version) = (loaded.manifest.model.clone(), loaded.manifest.version);
        let (queue, receiver) = sync_channel(batching.queue.max(1));
        let depth = Arc::new(AtomicUsize::new(0));
        let worker = Worker {
            loaded,
            receiver,
            depth: depth.clone(),
            batching,
            metrics,
        };
        std::thread::Builder::new()
            .name(format!("serve-{model}@{version}"))
            .spawn(move || worker.run())?;
        Ok(Self {
            model,
            version,
            since: kiln::registry::now_rfc3339(),
            batching,
            signature,
            queue,
            depth,
        })
    }

    /// Queues validated rows; the answer arrives on the returned receiver.
    pub fn submit(&self, rows: Rows, deadline: Instant) -> Result<oneshot::Receiver<Answer>, Refused> {
        let (reply, answer) = oneshot::channel();
        self.depth.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(Pending { rows, deadline, reply }) {
            Ok(()) => Ok(answer),
            Err(e) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(match e {
                    TrySendError::Full(_) => Refused::Full,
                    TrySendError::Disconnected(_) => Refused::Closed,
                })
            }
        }
    }

    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
}

/// A real forward pass on a zero batch of the declared shape: fails here, not on the first
/// request, if the weights or the device are unusable.
fn warm_up(loaded: &LoadedModel, signature: &Signature) -> anyhow::Result<()> {
    let width: usize = signature.input.shape[1..]
        .iter()
        .map(|&d| if d < 0 { 8 } else { d as usize })
        .product();
    let out = catch(|| loaded.forward_flat(vec![0.0; width], 1, width))
        .map_err(|e| anyhow::anyhow!("warm-up forward pass failed: {e}"))?;
    let expected = signature.classes.unwrap_or(1);
    anyhow::ensure!(
        out.len() == 1 && out[0].len() == expected && out[0].iter().all(|v| v.is_finite()),
        "warm-up forward pass gave {} rows of {} values (expected 1 row of {expected} finite values)",
        out.len(),
        out.first().map_or(0, Vec::len)
    );
    Ok(())
}

/// Runs `f`, turning a libtorch panic into an error instead of a dead batcher thread.
fn catch(f: impl FnOnce() -> Answer) -> Answer {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the forward pass panicked".into());
        Err(message)
    })
}

struct Worker {
    loaded: LoadedModel,
    receiver: Receiver<Pending>,
    depth: Arc<AtomicUsize>,
    batching: Batching,
    metrics: Arc<Metrics>,
}

impl Worker {
    fn run(self) {
        while let Some(first) = self.next() {
            let batch = self.gather(first);
            self.depth.fetch_sub(batch.len(), Ordering::Relaxed);
            self.answer(batch);
        }
    }

    /// The next request: polled for [`HOT_WAIT`], then waited for; `None` once the queue is
    /// closed.
    fn next(&self) -> Option<Pending> {
        let hot_until = Instant::now() + HOT_WAIT;
        while Instant::now() < hot_until {
            match self.receiver.try_recv() {
                Ok(pending) => return Some(pending),
                Err(TryRecvError::Empty) => std::thread::yield_now(),
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        self.receiver.recv().ok()
    }

    /// The first request plus what else is queued. Under load (more than one request already
    /// waiting) it keeps collecting while requests keep arriving less than [`GAP`] apart, for
    /// at most `max_delay_us`, so batches fill up without a lone request ever waiting.
    fn gather(&self, first: Pending) -> Vec<Pending> {
        let mut rows = first.rows.batch;
        let mut batch = vec![first];
        let full = |rows: usize| rows >= self.batching.max_batch;
        while !full(rows) {
            let Ok(pending) = self.receiver.try_recv() else { break };
            rows += pending.rows.batch;
            batch.push(pending);
        }
        let until = Instant::now() + Duration::from_micros(self.batching.max_delay_us);
        while batch.len() > 1 && !full(rows) {
            let wait = until.saturating_duration_since(Instant::now()).min(GAP);
            if wait.is_zero() {
                break;
            }
            let Ok(pending) = self.receiver.recv_timeout(wait) else {
                break;
            };
            rows += pending.rows.batch;
            batch.push(pending);
        }
        batch
    }

    /// Drops requests whose client gave up, runs the rest grouped by row width.
    fn answer(&self, batch: Vec<Pending>) {
        let now = Instant::now();
        let mut live: Vec<Pending> = batch
            .into_iter()
            .filter(|p| p.deadline > now && !p.reply.is_closed())
            .collect();
        while !live.is_empty() {
            let width = live[0].rows.width;
            let (group, rest): (Vec<_>, Vec<_>) = live.into_iter().partition(|p| p.rows.width == width);
            live = rest;
            self.forward_group(group, width);
        }
    }

    fn forward_group(&self, group: Vec<Pending>, width: usize) {
        let rows: usize = group.iter().map(|p| p.rows.batch).sum();
        let mut flat = Vec::with_capacity(rows * width);
        for p in &group {
            flat.extend_from_slice(&p.rows.values);
        }
        let manifest = &self.loaded.manifest;
        self.metrics.batch(manifest.model.as_str(), manifest.version, rows);
        match catch(|| self.loaded.forward_flat(flat, rows, width)) {
            Ok(mut outputs) => {
                for p in group {
                    let rest = outputs.split_off(p.rows.batch.min(outputs.len()));
                    let _ = p.reply.send(Ok(std::mem::replace(&mut outputs, rest)));
                }
            }
            Err(e) if group.len() == 1 => {
                for p in group {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
            // Isolate the failure: each request alone, so only a bad one fails.
            Err(_) => {
                for p in group {
                    self.forward_group(vec![p], width);
                }
            }
        }
    }
}

//! One deployment: a loaded version behind a dynamic batcher.
//!
//! Requests (already validated) wait in a bounded queue. An instance (a thread holding the
//! shared model) takes the first, adds whatever else is queued (under load, and while no other
//! instance is idle, waiting up to `max_delay_us` for more while they keep coming) up to its
//! share of `max_batch` rows, runs one forward pass and hands each request its rows back.
//! When a batch fails, its requests are retried one by one, so one request can only ever fail
//! itself.
//!
//! On the CPU a deployment runs several instances, as Triton's instance groups do. The lead
//! takes every request while it is free and uses libtorch's full intra-op thread count while
//! it serves alone, so a lone client always gets the fastest single forward pass on one warm
//! OpenMP team. Helpers, one intra-op thread each, are woken only for requests that arrive
//! while the lead is busy; while they serve, the lead runs single-threaded too.
//! Under load, several single-threaded forward passes keep every core busy, where one
//! multi-threaded pass stalls at each OpenMP barrier whenever the HTTP threads take one of its
//! cores. To spread a burst over the instances, one batch takes at most
//! `max_batch / instances` rows.
//!
//! ```text
//!            ┌─▶ lead   (takes requests whenever it is free; all intra-op threads when alone)
//! queue ─────┼─▶ helper (1 thread; woken only while the lead is busy)
//!            └─▶ helper (1 thread; woken only while the lead is busy)
//! ```
//!
//! During a canary the version in force hosts the candidate ([`Deployment::host`]): each batch
//! runs through one of the two models, the candidate's whenever its share of the rows so far
//! is below its percentage. Both keep batching from one queue as fully as one version alone
//! would (splitting the requests over two queues cost 5–10% of the throughput at 64 clients,
//! from the candidate's small batches), and each answer says which version gave it.
//!
//! The deployment lives as long as someone holds it: the server's table, and every request in
//! flight. When a switch drops it from the table, the queue closes; requests already queued
//! still finish on it, then the instances end and the model is freed.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kiln_core::deploy::Batching;
use kiln_core::names::Name;
use tokio::sync::oneshot;

use super::metrics::Metrics;
use super::tensor::{Rows, Signature};
use kiln_engine::loaded::LoadedModel;

/// Under load, a batch keeps growing while requests arrive at most this far apart.
const GAP: Duration = Duration::from_micros(250);

/// After a forward pass the lead polls the queue this long (yielding the core to anything
/// runnable) before it sleeps: while requests keep coming, the next one is picked up without
/// a futex wake-up, and the thread, its caches and libtorch's OpenMP team stay warm. It costs
/// nothing when idle and at most this much CPU per batch under load.
const HOT_WAIT: Duration = Duration::from_micros(500);

/// The lead runs single-threaded while a helper took a batch this recently: a load that
/// brings the helpers in keeps them busy; a lone client never does.
const HELPED_RECENTLY: Duration = Duration::from_millis(100);

/// What a forward pass gives: one output row per input row, or why not.
type Output = Result<Vec<Vec<f32>>, String>;

/// What a request gets back: its output rows and how long they took, or why not.
pub type Answer = Result<Served, Failed>;

/// A served request: its output rows (one per input row), the version whose forward pass
/// gave them (a canary's candidate answers some batches of the version in force's queue), and
/// where its time went.
pub struct Served {
    pub rows: Vec<Vec<f32>>,
    pub version: u32,
    pub timing: Timing,
}

/// A request whose forward pass failed: which version ran it, and why.
#[derive(Debug, Clone)]
pub struct Failed {
    pub version: u32,
    pub message: String,
}

/// Where a served request's time inside the batcher went.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// From joining the queue to the start of the forward pass that answered it.
    pub queue: Duration,
    /// That forward pass (the whole batch's).
    pub forward: Duration,
}

/// A request's reply channel and the answer to send on it.
type Reply = (oneshot::Sender<Answer>, Answer);

struct Pending {
    rows: Rows,
    queued: Instant,
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
    shared: Arc<Shared>,
}

/// Why a request could not join the queue.
pub enum Refused {
    Full,
    Closed,
}

impl Deployment {
    /// Warms `loaded` up with a real forward pass, then starts `instances` batcher threads
    /// (the lead and `instances - 1` helpers) sharing it.
    pub fn start(
        loaded: LoadedModel,
        batching: Batching,
        instances: usize,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let signature = Signature::of(&loaded.model.config());
        warm_up(&loaded, &signature)?;
        let (model, version) = (loaded.manifest.model.clone(), loaded.manifest.version);
        let forward: Forward = Arc::new(move |flat, rows, width| loaded.forward_flat(flat, rows, width));
        let shared = spawn(model.clone(), version, forward, batching, instances, metrics)?;
        Ok(Self {
            model,
            version,
            since: kiln_core::registry::now_rfc3339(),
            batching,
            signature,
            shared,
        })
    }

    /// A canary: `candidate` runs `percent` of the rows of this deployment's batches (whole
    /// batches, every k-th by rows), so both versions batch as fully as this one alone. The
    /// two must take and give the same tensors.
    pub fn host(&self, candidate: &Deployment, percent: f64) {
        *self.shared.guest.lock().unwrap_or_else(|p| p.into_inner()) = Some(Guest {
            version: candidate.version,
            forward: candidate.shared.forward.clone(),
            share: percent / 100.0,
            rows: 0,
            guest_rows: 0,
        });
    }

    /// Ends the canary [`host`](Self::host) started: this version runs every batch again.
    pub fn unhost(&self) {
        self.shared.guest.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Queues validated rows; the answer arrives on the returned receiver.
    pub fn submit(&self, rows: Rows, deadline: Instant) -> Result<oneshot::Receiver<Answer>, Refused> {
        let (reply, answer) = oneshot::channel();
        self.shared.queue.push(Pending {
            rows,
            queued: Instant::now(),
            deadline,
            reply,
        })?;
        Ok(answer)
    }

    pub fn queue_depth(&self) -> usize {
        self.shared.queue.depth.load(Ordering::Relaxed)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.shared.queue.close();
    }
}

/// The bounded request queue of one deployment, and who is waiting on it. One lock guards it;
/// each condition variable has one kind of waiter, so a new request wakes exactly the thread
/// that should take it.
struct Queue {
    state: Mutex<State>,
    capacity: usize,
    /// Requests queued: read without the lock by the lead's polling and by `/metrics`.
    depth: AtomicUsize,
    /// The lead, idle.
    lead_idle: Condvar,
    /// Helpers, idle.
    helper_idle: Condvar,
}

#[derive(Default)]
struct State {
    items: VecDeque<Pending>,
    closed: bool,
    lead_idle: bool,
    lead_busy: bool,
    helpers_idle: usize,
    /// When a helper last took a batch.
    helped_at: Option<Instant>,
}

impl Queue {
    fn new(capacity: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            capacity,
            depth: AtomicUsize::new(0),
            lead_idle: Condvar::new(),
            helper_idle: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, pending: Pending) -> Result<(), Refused> {
        let mut state = self.lock();
        if state.closed {
            return Err(Refused::Closed);
        }
        if state.items.len() >= self.capacity {
            return Err(Refused::Full);
        }
        state.items.push_back(pending);
        self.depth.store(state.items.len(), Ordering::Relaxed);
        if state.lead_idle {
            self.lead_idle.notify_one();
        } else {
            self.wake_a_helper(&state);
        }
        Ok(())
    }

    /// While the lead is busy, hands what is still queued to an idle helper.
    fn wake_a_helper(&self, state: &State) {
        if state.lead_busy && !state.items.is_empty() && state.helpers_idle > 0 {
            self.helper_idle.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.lead_idle.notify_all();
        self.helper_idle.notify_all();
    }

    /// Moves queued requests into `batch` until it holds `cap` rows.
    fn take(&self, state: &mut State, batch: &mut Vec<Pending>, rows: &mut usize, cap: usize) {
        while *rows < cap {
            let Some(pending) = state.items.pop_front() else { break };
            *rows += pending.rows.batch;
            batch.push(pending);
        }
        self.depth.store(state.items.len(), Ordering::Relaxed);
    }

    /// Adds requests to `batch` while they keep arriving: it sleeps [`GAP`] at a time (no
    /// wake-up per arrival) and stops after a step that brought none, after `max_delay`, or
    /// once `go_on` fails.
    fn gather<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        batch: &mut Vec<Pending>,
        rows: &mut usize,
        cap: usize,
        max_delay: Duration,
        go_on: impl Fn(&State) -> bool,
    ) -> MutexGuard<'a, State> {
        let until = Instant::now() + max_delay;
        while *rows < cap && go_on(&state) {
            let wait = until.saturating_duration_since(Instant::now()).min(GAP);
            if wait.is_zero() {
                break;
            }
            if state.items.is_empty() {
                drop(state);
                std::thread::sleep(wait);
                state = self.lock();
            }
            if state.items.is_empty() {
                break;
            }
            self.take(&mut state, batch, rows, cap);
        }
        state
    }
}

/// One forward pass: `rows` rows of `width` values in, one output row per input row out.
type Forward = Arc<dyn Fn(Vec<f32>, usize, usize) -> Output + Send + Sync>;

/// A canary's candidate, running a share of a deployment's batches.
struct Guest {
    version: u32,
    forward: Forward,
    /// Share of rows it runs (0–1).
    share: f64,
    /// Rows of every batch since it came, and of those it ran.
    rows: u64,
    guest_rows: u64,
}

/// What the instances of one deployment share.
struct Shared {
    model: Name,
    version: u32,
    forward: Forward,
    queue: Arc<Queue>,
    /// Rows one batch takes at most: one instance's share of `max_batch`.
    cap: usize,
    /// Longest wait for a fuller batch under load.
    max_delay: Duration,
    metrics: Arc<Metrics>,
    /// A canary's candidate running a share of the batches.
    guest: Mutex<Option<Guest>>,
}

impl Shared {
    /// Which version runs a batch of `rows` rows: a guest whose share of rows so far is below
    /// its share, else this deployment's own.
    fn pick(&self, rows: usize) -> (u32, Forward) {
        let mut guest = self.guest.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(g) = guest.as_mut() {
            g.rows += rows as u64;
            if (g.guest_rows as f64) < g.share * g.rows as f64 {
                g.guest_rows += rows as u64;
                return (g.version, g.forward.clone());
            }
        }
        (self.version, self.forward.clone())
    }
}

/// Starts `instances` threads (the lead and `instances - 1` helpers) serving one queue.
fn spawn(
    model: Name,
    version: u32,
    forward: Forward,
    batching: Batching,
    instances: usize,
    metrics: Arc<Metrics>,
) -> std::io::Result<Arc<Shared>> {
    let instances = instances.max(1);
    let queue = Arc::new(Queue::new(batching.queue.max(1)));
    let shared = Arc::new(Shared {
        model: model.clone(),
        version,
        forward,
        queue: queue.clone(),
        cap: batching.max_batch.div_ceil(instances).max(1),
        max_delay: Duration::from_micros(batching.max_delay_us),
        metrics,
        guest: Mutex::new(None),
    });
    for index in 0..instances {
        let worker = Worker {
            shared: shared.clone(),
            lead: index == 0,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("serve-{model}@{version}-{index}"))
            .spawn(move || worker.run());
        if let Err(e) = spawned {
            queue.close();
            return Err(e);
        }
    }
    Ok(shared)
}

struct Worker {
    shared: Arc<Shared>,
    lead: bool,
}

impl Worker {
    fn run(self) {
        // Helpers run single-threaded; the lead uses all intra-op threads while it serves
        // alone and one while helpers are serving too (its OpenMP team would stall whenever
        // they take its cores). The count is per thread under OpenMP; on a thread's first
        // parallel op libtorch sets it to the count last set by any thread, so that happens
        // first (the query does it), then the setting.
        tch::get_num_threads();
        let alone = kiln_engine::device::intra_op_threads();
        let mut threads = if self.lead { alone } else { 1 };
        tch::set_num_threads(threads);
        let queue = &self.shared.queue;
        loop {
            let batch = if self.lead {
                self.lead_batch().map(|(batch, helped)| {
                    let wanted = if helped { 1 } else { alone };
                    if wanted != threads {
                        threads = wanted;
                        tch::set_num_threads(threads);
                    }
                    batch
                })
            } else {
                self.helper_batch()
            };
            let Some(batch) = batch else { return };
            let replies = self.answer(batch);
            // Free before the answers go out, so a client's next request finds the lead free.
            if self.lead {
                queue.lock().lead_busy = false;
            }
            for (reply, answer) in replies {
                let _ = reply.send(answer);
            }
        }
    }

    /// The lead's next batch: waits for a request (polling for [`HOT_WAIT`] first), then
    /// gathers; and whether a helper took a batch within [`HELPED_RECENTLY`]. `None` once the
    /// queue is closed and empty.
    fn lead_batch(&self) -> Option<(Vec<Pending>, bool)> {
        let queue = &self.shared.queue;
        let hot_until = Instant::now() + HOT_WAIT;
        while queue.depth.load(Ordering::Relaxed) == 0 && Instant::now() < hot_until {
            std::thread::yield_now();
        }
        let mut state = queue.lock();
        while state.items.is_empty() {
            if state.closed {
                return None;
            }
            state.lead_idle = true;
            state = queue.lead_idle.wait(state).unwrap_or_else(|p| p.into_inner());
            state.lead_idle = false;
        }
        // More is worth waiting for only while no helper is idle to take it at once.
        let (mut state, batch) = self.fill(state, |s| s.helpers_idle == 0);
        state.lead_busy = true;
        queue.wake_a_helper(&state);
        let helped = state.helped_at.is_some_and(|t| t.elapsed() < HELPED_RECENTLY);
        Some((batch, helped))
    }

    /// A helper's next batch, taken only while the lead is busy; `None` once the queue is
    /// closed (the lead drains what is left).
    fn helper_batch(&self) -> Option<Vec<Pending>> {
        let queue = &self.shared.queue;
        let mut state = queue.lock();
        loop {
            if state.closed {
                return None;
            }
            if state.lead_busy && !state.items.is_empty() {
                break;
            }
            state.helpers_idle += 1;
            state = queue.helper_idle.wait(state).unwrap_or_else(|p| p.into_inner());
            state.helpers_idle -= 1;
        }
        state.helped_at = Some(Instant::now());
        // More is worth waiting for only while neither the lead nor another helper is free.
        let (state, batch) = self.fill(state, |s| s.lead_busy && s.helpers_idle == 0);
        queue.wake_a_helper(&state);
        Some(batch)
    }

    /// Takes queued requests (at least one is queued) up to this instance's share of rows.
    /// Under load (more than one was waiting) it also gathers the ones arriving right behind,
    /// while `go_on` holds.
    fn fill<'a>(
        &'a self,
        mut state: MutexGuard<'a, State>,
        go_on: impl Fn(&State) -> bool,
    ) -> (MutexGuard<'a, State>, Vec<Pending>) {
        let (queue, cap) = (&self.shared.queue, self.shared.cap);
        let (mut batch, mut rows) = (Vec::new(), 0);
        queue.take(&mut state, &mut batch, &mut rows, cap);
        if batch.len() > 1 {
            state = queue.gather(state, &mut batch, &mut rows, cap, self.shared.max_delay, go_on);
        }
        (state, batch)
    }

    /// Drops requests whose client gave up, runs the rest grouped by row width; returns each
    /// request's answer, to be sent.
    fn answer(&self, batch: Vec<Pending>) -> Vec<Reply> {
        let now = Instant::now();
        let mut live: Vec<Pending> = batch
            .into_iter()
            .filter(|p| p.deadline > now && !p.reply.is_closed())
            .collect();
        let mut replies = Vec::with_capacity(live.len());
        while !live.is_empty() {
            let width = live[0].rows.width;
            let (group, rest): (Vec<_>, Vec<_>) = live.into_iter().partition(|p| p.rows.width == width);
            live = rest;
            let rows: usize = group.iter().map(|p| p.rows.batch).sum();
            let by = self.shared.pick(rows);
            self.forward_group(group, width, &by, &mut replies);
        }
        replies
    }

    /// Runs `group` through `by` (a version and its forward pass); when that fails, each
    /// request again alone through the same version.
    fn forward_group(&self, group: Vec<Pending>, width: usize, by: &(u32, Forward), replies: &mut Vec<Reply>) {
        let rows: usize = group.iter().map(|p| p.rows.batch).sum();
        let mut flat = Vec::with_capacity(rows * width);
        for p in &group {
            flat.extend_from_slice(&p.rows.values);
        }
        let shared = &self.shared;
        let (version, run) = by;
        let started = Instant::now();
        let output = catch(|| run(flat, rows, width));
        let forward = started.elapsed();
        let waited = |p: &Pending| started.saturating_duration_since(p.queued);
        // A failed batch's requests are counted when their retries answer them.
        let answered = if output.is_ok() { &group[..] } else { &[] };
        let waits = answered.iter().map(waited);
        shared
            .metrics
            .batch(shared.model.as_str(), *version, rows, forward, waits);
        match output {
            Ok(mut outputs) => {
                for p in group {
                    let rest = outputs.split_off(p.rows.batch.min(outputs.len()));
                    let served = Served {
                        rows: std::mem::replace(&mut outputs, rest),
                        version: *version,
                        timing: Timing {
                            queue: waited(&p),
                            forward,
                        },
                    };
                    replies.push((p.reply, Ok(served)));
                }
            }
            Err(message) if group.len() == 1 => {
                let failed = Failed {
                    version: *version,
                    message,
                };
                replies.extend(group.into_iter().map(|p| (p.reply, Err(failed.clone()))));
            }
            // Isolate the failure: each request alone, so only a bad one fails.
            Err(_) => {
                for p in group {
                    self.forward_group(vec![p], width, by, replies);
                }
            }
        }
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
fn catch(f: impl FnOnce() -> Output) -> Output {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .unwrap_or_else(|panic| Err(panic_message(&*panic).unwrap_or("the forward pass panicked").to_owned()))
}

/// The message a panic was raised with, when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> Option<&str> {
    panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    const WAIT: Duration = Duration::from_secs(20);

    fn batching(max_batch: usize, queue: usize) -> Batching {
        Batching {
            max_batch,
            max_delay_us: 0,
            queue,
        }
    }

    /// One row of width 1; the answer comes back on the returned channel.
    fn request(queue: &Queue) -> Result<mpsc::Receiver<Output>, Refused> {
        let (reply, answer) = oneshot::channel();
        queue.push(Pending {
            rows: Rows {
                batch: 1,
                width: 1,
                values: vec![1.0],
            },
            queued: Instant::now(),
            deadline: Instant::now() + WAIT,
            reply,
        })?;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            if let Ok(answer) = answer.blocking_recv() {
                let _ = sender.send(answer.map(|served| served.rows).map_err(|failed| failed.message));
            }
        });
        Ok(receiver)
    }

    /// One forward pass as a test sees it: thread name, rows, intra-op threads.
    type Seen = (String, usize, i32);

    /// What a test sees of its instances: the queue, each forward pass, and the gates of the
    /// gated instances.
    type Probe = (Arc<Queue>, mpsc::Receiver<Seen>, Vec<mpsc::Sender<()>>);

    /// Instances whose forward pass reports what it ran with; the instances numbered in
    /// `gated` wait for one message on their gate before each answer.
    fn instances(count: usize, batching: Batching, gated: &[usize]) -> Probe {
        let (seen, forwards) = mpsc::channel();
        let (opens, gates): (Vec<_>, Vec<_>) = gated
            .iter()
            .map(|index| {
                let (open, gate) = mpsc::channel::<()>();
                (open, (format!("serve-m@1-{index}"), Mutex::new(gate)))
            })
            .unzip();
        let forward: Forward = Arc::new(move |_, rows, _| {
            let name = std::thread::current().name().unwrap_or_default().to_owned();
            let _ = seen.send((name.clone(), rows, tch::get_num_threads()));
            if let Some((_, gate)) = gates.iter().find(|(n, _)| *n == name) {
                let _ = gate.lock().expect("gate").recv();
            }
            Ok(vec![vec![0.5]; rows])
        });
        let metrics = Arc::new(Metrics::default());
        let name = Name::new("m").expect("name");
        let shared = spawn(name, 1, forward, batching, count, metrics).expect("spawn");
        (shared.queue.clone(), forwards, opens)
    }

    fn wait_for_depth(queue: &Queue, depth: usize) {
        let until = Instant::now() + WAIT;
        while queue.depth.load(Ordering::Relaxed) != depth {
            assert!(Instant::now() < until, "queue depth never reached {depth}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_lone_client_is_always_served_by_the_lead() {
        let (queue, forwards, _) = instances(3, batching(8, 16), &[]);
        for _ in 0..50 {
            let answer = request(&queue).ok().expect("queued").recv_timeout(WAIT);
            assert_eq!(answer.expect("answered"), Ok(vec![vec![0.5]]));
        }
        let alone = kiln_engine::device::intra_op_threads();
        let served: Vec<Seen> = forwards.try_iter().collect();
        assert_eq!(served.len(), 50);
        assert!(
            served
                .iter()
                .all(|(name, _, threads)| name == "serve-m@1-0" && *threads == alone),
            "{served:?}"
        );
    }

    #[test]
    fn requests_arriving_while_the_lead_is_busy_go_to_a_helper_in_batches_of_its_share() {
        // 2 instances share max_batch 4: at most 2 rows per batch.
        let (queue, forwards, gates) = instances(2, batching(4, 16), &[0, 1]);
        let alone = kiln_engine::device::intra_op_threads();
        let first = request(&queue).ok().expect("queued");
        assert_eq!(
            forwards.recv_timeout(WAIT).expect("ran"),
            ("serve-m@1-0".into(), 1, alone)
        );
        let second = request(&queue).ok().expect("queued");
        assert_eq!(forwards.recv_timeout(WAIT).expect("ran"), ("serve-m@1-1".into(), 1, 1));
        // Both busy: four more wait, then the helper takes them two at a time.
        let later: Vec<_> = (0..4).map(|_| request(&queue).ok().expect("queued")).collect();
        wait_for_depth(&queue, 4);
        for _ in 0..3 {
            gates[1].send(()).expect("gate open");
        }
        for answer in std::iter::once(&second).chain(&later) {
            assert_eq!(answer.recv_timeout(WAIT).expect("answered"), Ok(vec![vec![0.5]]));
        }
        let helped: Vec<Seen> = forwards.try_iter().collect();
        assert_eq!(helped, vec![("serve-m@1-1".into(), 2, 1), ("serve-m@1-1".into(), 2, 1)]);
        assert!(first.try_recv().is_err(), "the lead is still held");
        gates[0].send(()).expect("gate open");
        assert_eq!(first.recv_timeout(WAIT).expect("answered"), Ok(vec![vec![0.5]]));
        // Right after helpers served, the lead runs single-threaded.
        let next = request(&queue).ok().expect("queued");
        assert_eq!(forwards.recv_timeout(WAIT).expect("ran"), ("serve-m@1-0".into(), 1, 1));
        gates[0].send(()).expect("gate open");
        assert_eq!(next.recv_timeout(WAIT).expect("answered"), Ok(vec![vec![0.5]]));
    }

    #[test]
    fn a_hosted_candidate_runs_its_share_of_the_batches_and_says_so() {
        let own: Forward = Arc::new(|_, rows, _| Ok(vec![vec![0.5]; rows]));
        let candidate: Forward = Arc::new(|_, rows, _| Ok(vec![vec![0.9]; rows]));
        let metrics = Arc::new(Metrics::default());
        let shared = spawn(Name::new("m").expect("name"), 1, own, batching(8, 16), 1, metrics).expect("spawn");
        *shared.guest.lock().expect("guest") = Some(Guest {
            version: 2,
            forward: candidate,
            share: 0.25,
            rows: 0,
            guest_rows: 0,
        });
        let mut by = Vec::new();
        for _ in 0..40 {
            let (reply, answer) = oneshot::channel();
            shared
                .queue
                .push(Pending {
                    rows: Rows {
                        batch: 1,
                        width: 1,
                        values: vec![1.0],
                    },
                    queued: Instant::now(),
                    deadline: Instant::now() + WAIT,
                    reply,
                })
                .ok()
                .expect("queued");
            let served = answer.blocking_recv().expect("answered").expect("served");
            assert_eq!(served.rows, vec![vec![if served.version == 2 { 0.9 } else { 0.5 }]]);
            by.push(served.version);
        }
        assert_eq!(by.iter().filter(|v| **v == 2).count(), 10, "{by:?}");
        assert_eq!(&by[..4], &[2, 1, 1, 1], "spread evenly: {by:?}");
        shared.guest.lock().expect("guest").take();
        shared.queue.close();
    }

    #[test]
    fn a_full_queue_refuses_and_a_closed_one_drains_then_frees_the_model() {
        let (queue, forwards, gates) = instances(1, batching(1, 2), &[0]);
        let first = request(&queue).ok().expect("queued");
        // The lead holds the first; two more fill the queue.
        forwards.recv_timeout(WAIT).expect("ran");
        let queued: Vec<_> = (0..2).map(|_| request(&queue).ok().expect("queued")).collect();
        assert!(matches!(request(&queue), Err(Refused::Full)));
        queue.close();
        assert!(matches!(request(&queue), Err(Refused::Closed)));
        for _ in 0..3 {
            gates[0].send(()).expect("gate open");
        }
        for answer in std::iter::once(&first).chain(&queued) {
            assert_eq!(answer.recv_timeout(WAIT).expect("answered"), Ok(vec![vec![0.5]]));
        }
        // The instances end and drop the shared state (and with it the model).
        let until = Instant::now() + WAIT;
        while Arc::strong_count(&queue) > 1 {
            assert!(Instant::now() < until, "the instances did not end");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

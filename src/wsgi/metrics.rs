//! Process-wide request accounting behind `mod_wsgi.process_metrics()` and
//! `mod_wsgi.request_metrics()` (pure Rust; `events` turns the results into Python dicts).
//!
//! Two levels of cost:
//!
//! - Always on, for `process_metrics()`: each thread that serves requests has a [`ThreadSlot`]
//!   of counters that only that thread writes (plain loads and stores, no lock, no shared cache
//!   line), so a request costs two clock reads and a few stores. Readers add the slots up.
//! - After `mod_wsgi.start_recording_metrics()` ([`RECORDING`]): each finished request is also
//!   folded into cumulative [`Totals`] under one mutex. A reader (one per interpreter: the
//!   caller's) keeps its own baseline, so `request_metrics()` returns what happened since that
//!   reader's previous call, and two interpreters reading do not steal each other's intervals.
//!
//! Histograms use fixed bucket boundaries ([`BUCKETS`] counts, see [`bucket`]), the layout
//! mod_wsgi documents for its phase histograms.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Set once `mod_wsgi.start_recording_metrics()` was called in any interpreter of the process.
pub static RECORDING: AtomicBool = AtomicBool::new(false);

/// Seconds since the epoch, now.
pub fn wall_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Microseconds on a monotonic clock private to this process (never 0 once running).
fn mono_us() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    BASE.get_or_init(Instant::now).elapsed().as_micros() as u64 + 1
}

/// When this process started serving (Python initialised), as seconds since the epoch.
static STARTED: OnceLock<f64> = OnceLock::new();

/// Notes that the process has started (`restart_time` of `process_metrics()`). First call wins.
pub fn mark_process_start() {
    let _ = STARTED.get_or_init(wall_now);
    let _ = mono_us();
}

/// Whether this process is a daemon process (queue and daemon phases exist).
static DAEMON: AtomicBool = AtomicBool::new(false);

/// How many threads a process of this kind may use for requests (capacity).
static THREADS_MAXIMUM: AtomicU64 = AtomicU64::new(1);

/// Records what kind of process this is: a daemon process or an Apache child, and its request
/// thread limit (`threads=`, or the MPM's threads per child).
pub fn set_process_kind(daemon: bool, threads_maximum: u32) {
    DAEMON.store(daemon, Ordering::Relaxed);
    THREADS_MAXIMUM.store(u64::from(threads_maximum.max(1)), Ordering::Relaxed);
}

// ---------------------------------------------------------------------------------------------
// Per-thread slots (always on)
// ---------------------------------------------------------------------------------------------

/// The counters of one request thread. Only its own thread writes them; readers may see a
/// request half-counted, never a torn value.
pub struct ThreadSlot {
    /// 1-based, in the order threads served their first request (`mod_wsgi.thread_id`).
    pub id: u64,
    /// Requests started on this thread.
    started: AtomicU64,
    /// Requests finished on this thread.
    completed: AtomicU64,
    /// [`mono_us`] when the current request began; 0 while idle.
    busy_since: AtomicU64,
    /// Microseconds spent in finished requests.
    busy_total: AtomicU64,
}

/// Adds `n` to a counter only this thread writes (no locked instruction needed).
fn bump(a: &AtomicU64, n: u64) {
    a.store(a.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Every slot made in this process, in id order. Slots live as long as the process (a thread
/// that ends leaves its counters behind, as mod_wsgi's thread list does).
static THREADS: Mutex<Vec<&'static ThreadSlot>> = Mutex::new(Vec::new());

thread_local! {
    static SLOT: Cell<Option<&'static ThreadSlot>> = const { Cell::new(None) };
}

fn this_slot() -> &'static ThreadSlot {
    SLOT.with(|s| match s.get() {
        Some(slot) => slot,
        None => {
            let mut all = THREADS.lock().unwrap_or_else(|e| e.into_inner());
            let slot: &'static ThreadSlot = Box::leak(Box::new(ThreadSlot {
                id: all.len() as u64 + 1,
                started: AtomicU64::new(0),
                completed: AtomicU64::new(0),
                busy_since: AtomicU64::new(0),
                busy_total: AtomicU64::new(0),
            }));
            all.push(slot);
            s.set(Some(slot));
            slot
        }
    })
}

/// A request running on this thread, from [`begin`] to [`end`].
pub struct Ticket {
    slot: &'static ThreadSlot,
    since: u64,
    before: u64,
}

impl Ticket {
    /// `mod_wsgi.thread_id`: this thread's number (1-based).
    pub fn thread_id(&self) -> u64 {
        self.slot.id
    }

    /// `mod_wsgi.thread_requests`: requests this thread started before this one.
    pub fn thread_requests(&self) -> u64 {
        self.before
    }
}

/// A request starts on this thread.
pub fn begin() -> Ticket {
    let slot = this_slot();
    let before = slot.started.load(Ordering::Relaxed);
    bump(&slot.started, 1);
    let since = mono_us();
    slot.busy_since.store(since, Ordering::Relaxed);
    Ticket { slot, since, before }
}

/// The request of `t` has finished.
pub fn end(t: Ticket) {
    let now = mono_us();
    bump(&t.slot.busy_total, now.saturating_sub(t.since));
    t.slot.busy_since.store(0, Ordering::Relaxed);
    bump(&t.slot.completed, 1);
}

/// The process-wide counters, added up from the slots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessCounts {
    /// Requests finished.
    pub request_count: u64,
    /// Seconds threads spent in requests, the running ones' time so far included.
    pub busy_time: f64,
    /// Requests running now.
    pub active: u64,
    /// Per thread: (thread id, requests started), in id order.
    pub threads: Vec<(u64, u64)>,
    /// Per thread: requests finished, in id order.
    completed: Vec<u64>,
}

/// Adds the slots up, now.
pub fn counts() -> ProcessCounts {
    let all: Vec<&'static ThreadSlot> = THREADS.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let now = mono_us();
    let mut c = ProcessCounts::default();
    let mut busy_us = 0u64;
    for s in all {
        let completed = s.completed.load(Ordering::Relaxed);
        c.request_count += completed;
        busy_us += s.busy_total.load(Ordering::Relaxed);
        let since = s.busy_since.load(Ordering::Relaxed);
        if since != 0 {
            c.active += 1;
            busy_us += now.saturating_sub(since);
        }
        c.threads.push((s.id, s.started.load(Ordering::Relaxed)));
        c.completed.push(completed);
    }
    c.busy_time = busy_us as f64 / 1e6;
    c
}

// ---------------------------------------------------------------------------------------------
// Values handed to Python
// ---------------------------------------------------------------------------------------------

/// A value of a metrics dict.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    None,
    List(Vec<u64>),
    FloatList(Vec<f64>),
    /// `threads` of `process_metrics()`: (thread_id, request_count) per thread.
    Threads(Vec<(u64, u64)>),
}

/// The items of `mod_wsgi.process_metrics()`.
pub fn process_metrics() -> Vec<(&'static str, Value)> {
    let c = counts();
    let now = wall_now();
    let restart = *STARTED.get_or_init(wall_now);
    let (cpu_user, cpu_system) = crate::sys::process::cpu_times(false);
    vec![
        ("pid", Value::Int(i64::from(std::process::id()))),
        ("request_count", Value::Int(c.request_count as i64)),
        ("request_busy_time", Value::Float(c.busy_time)),
        ("memory_max_rss", Value::Int(crate::sys::process::peak_rss() as i64)),
        ("memory_rss", Value::Int(crate::sys::process::current_rss() as i64)),
        ("cpu_user_time", Value::Float(cpu_user)),
        ("cpu_system_time", Value::Float(cpu_system)),
        ("cpu_time", Value::Float(cpu_user + cpu_system)),
        ("restart_time", Value::Float(restart)),
        ("current_time", Value::Float(now)),
        ("running_time", Value::Int((now - restart).max(0.0) as i64)),
        ("request_threads", Value::Int(c.threads.len() as i64)),
        ("request_threads_maximum", Value::Int(THREADS_MAXIMUM.load(Ordering::Relaxed) as i64)),
        ("active_requests", Value::Int(c.active as i64)),
        ("threads", Value::Threads(c.threads)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Recording (after start_recording_metrics)
// ---------------------------------------------------------------------------------------------

/// Counts per histogram.
pub const BUCKETS: usize = 65;

/// The histogram bucket of a duration (seconds). Boundaries, in milliseconds: 16 octaves from
/// 1 ms to 65536 ms, each split linearly into 4 (so bucket `4*k + j` holds
/// `[2^k * (1 + j/4), 2^k * (1 + (j+1)/4))` ms); anything under 1.25 ms is bucket 0 and anything
/// from 65536 ms (about 65 s) up is the last one, 64. A value on a boundary goes up.
pub fn bucket(secs: f64) -> usize {
    let ms = secs * 1000.0;
    if ms.is_nan() || ms < 1.0 {
        return 0;
    }
    if ms >= 65536.0 {
        return BUCKETS - 1;
    }
    let octave = (ms as u64).ilog2() as usize; // 0..=15
    let base = (1u64 << octave) as f64;
    let sub = (((ms / base) - 1.0) * 4.0) as usize;
    octave * 4 + sub.min(3)
}

/// One timed phase: total seconds and the histogram.
#[derive(Debug, Clone, PartialEq)]
struct Phase {
    total: f64,
    buckets: [u64; BUCKETS],
}

impl Default for Phase {
    fn default() -> Self {
        Phase { total: 0.0, buckets: [0; BUCKETS] }
    }
}

impl Phase {
    fn add(&mut self, secs: f64) {
        let secs = secs.max(0.0);
        self.total += secs;
        self.buckets[bucket(secs)] += 1;
    }

    fn since(&self, base: &Phase) -> Phase {
        let mut buckets = [0; BUCKETS];
        for (i, b) in buckets.iter_mut().enumerate() {
            *b = self.buckets[i].saturating_sub(base.buckets[i]);
        }
        Phase { total: (self.total - base.total).max(0.0), buckets }
    }
}

/// Everything recorded since recording started (never reset: readers subtract baselines).
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    requests: u64,
    server: Phase,
    queue: Phase,
    daemon: Phase,
    application: Phase,
    request: Phase,
    input_read: Phase,
    output_write: Phase,
    gil_wait: Phase,
    gil_wait_count: u64,
    input_bytes: u64,
    input_reads: u64,
    output_bytes: u64,
    output_writes: u64,
    /// 1xx .. 5xx; a request that never called start_response counts as 5xx.
    status: [u64; 5],
}

impl Totals {
    fn since(&self, b: &Totals) -> Totals {
        let mut status = [0; 5];
        for (i, s) in status.iter_mut().enumerate() {
            *s = self.status[i].saturating_sub(b.status[i]);
        }
        Totals {
            requests: self.requests.saturating_sub(b.requests),
            server: self.server.since(&b.server),
            queue: self.queue.since(&b.queue),
            daemon: self.daemon.since(&b.daemon),
            application: self.application.since(&b.application),
            request: self.request.since(&b.request),
            input_read: self.input_read.since(&b.input_read),
            output_write: self.output_write.since(&b.output_write),
            gil_wait: self.gil_wait.since(&b.gil_wait),
            gil_wait_count: self.gil_wait_count.saturating_sub(b.gil_wait_count),
            input_bytes: self.input_bytes.saturating_sub(b.input_bytes),
            input_reads: self.input_reads.saturating_sub(b.input_reads),
            output_bytes: self.output_bytes.saturating_sub(b.output_bytes),
            output_writes: self.output_writes.saturating_sub(b.output_writes),
            status,
        }
    }
}

static TOTALS: Mutex<Option<Totals>> = Mutex::new(None);

/// What one finished request contributes. Times are seconds since the epoch (0: the phase did
/// not happen, e.g. queue and daemon phases in embedded mode); durations are seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sample {
    pub request_start: f64,
    pub queue_start: f64,
    pub daemon_start: f64,
    pub application_start: f64,
    pub application_finish: f64,
    pub input_read_time: f64,
    pub output_write_time: f64,
    pub gil_wait_time: f64,
    pub gil_wait_count: u64,
    pub input_bytes: u64,
    pub input_reads: u64,
    pub output_bytes: u64,
    pub output_writes: u64,
    /// The HTTP status, 0 if start_response was never called.
    pub status: u16,
}

impl Sample {
    /// (server, queue, daemon, application) seconds: Apache's part up to the hand-off (to the
    /// daemon, or to the application in embedded mode), the trip to the daemon, the daemon's
    /// part up to the application, the application itself.
    pub fn phases(&self) -> (f64, f64, f64, f64) {
        let app = (self.application_finish - self.application_start).max(0.0);
        if self.queue_start > 0.0 {
            let server = (self.queue_start - self.request_start).max(0.0);
            let queue = (self.daemon_start - self.queue_start).max(0.0);
            let daemon = (self.application_start - self.daemon_start).max(0.0);
            (server, queue, daemon, app)
        } else {
            ((self.application_start - self.request_start).max(0.0), 0.0, 0.0, app)
        }
    }
}

/// Folds a finished request into the totals (only while recording).
pub fn record(s: &Sample) {
    if !RECORDING.load(Ordering::Relaxed) {
        return;
    }
    let (server, queue, daemon, app) = s.phases();
    let mut g = TOTALS.lock().unwrap_or_else(|e| e.into_inner());
    let t = g.get_or_insert_with(Totals::default);
    t.requests += 1;
    t.server.add(server);
    if s.queue_start > 0.0 {
        t.queue.add(queue);
        t.daemon.add(daemon);
    }
    t.application.add(app);
    t.request.add(server + queue + daemon + app);
    t.input_read.add(s.input_read_time);
    t.output_write.add(s.output_write_time);
    t.gil_wait.add(s.gil_wait_time);
    t.gil_wait_count += s.gil_wait_count;
    t.input_bytes += s.input_bytes;
    t.input_reads += s.input_reads;
    t.output_bytes += s.output_bytes;
    t.output_writes += s.output_writes;
    let class = match s.status {
        100..=199 => Some(0),
        200..=299 => Some(1),
        300..=399 => Some(2),
        400..=499 => Some(3),
        0 | 500..=599 => Some(4),
        _ => None,
    };
    if let Some(c) = class {
        t.status[c] += 1;
    }
}

/// Where a reader's previous interval ended.
#[derive(Debug, Clone)]
struct Baseline {
    at: f64,
    totals: Totals,
    busy: f64,
    cpu: (f64, f64),
    completed: Vec<u64>,
}

fn baseline_now() -> Baseline {
    let totals = TOTALS.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
    let c = counts();
    Baseline { at: wall_now(), totals, busy: c.busy_time, cpu: crate::sys::process::cpu_times(false), completed: c.completed }
}

/// Baselines by reader; `None` holds where recording started (for readers that never called
/// start_recording_metrics themselves).
static READERS: Mutex<Vec<(Option<usize>, Baseline)>> = Mutex::new(Vec::new());

/// `start_recording_metrics()` by `reader`: recording is on from now, and this reader's first
/// interval starts now. Idempotent.
pub fn start_recording(reader: usize) {
    let mut r = READERS.lock().unwrap_or_else(|e| e.into_inner());
    if !RECORDING.swap(true, Ordering::SeqCst) {
        r.push((None, baseline_now()));
    }
    if !r.iter().any(|(k, _)| *k == Some(reader)) {
        r.push((Some(reader), baseline_now()));
    }
}

/// The items of `request_metrics()` for `reader`: what happened since its previous call (or
/// since recording started); `None` while not recording.
pub fn request_metrics(reader: usize) -> Option<Vec<(&'static str, Value)>> {
    if !RECORDING.load(Ordering::SeqCst) {
        return None;
    }
    let now = baseline_now();
    let prev = {
        let mut r = READERS.lock().unwrap_or_else(|e| e.into_inner());
        let prev = match r.iter().find(|(k, _)| *k == Some(reader)) {
            Some((_, b)) => b.clone(),
            None => r.iter().find(|(k, _)| k.is_none()).map(|(_, b)| b.clone()).unwrap_or_else(|| now.clone()),
        };
        r.retain(|(k, _)| *k != Some(reader));
        r.push((Some(reader), now.clone()));
        prev
    };
    Some(interval(&prev, &now))
}

fn interval(prev: &Baseline, now: &Baseline) -> Vec<(&'static str, Value)> {
    let t = now.totals.since(&prev.totals);
    let period = (now.at - prev.at).max(0.0);
    let per_second = |x: f64| if period > 0.0 { x / period } else { 0.0 };
    let n = t.requests;
    let mean = |p: &Phase| if n > 0 { p.total / n as f64 } else { 0.0 };
    let daemon = DAEMON.load(Ordering::Relaxed);
    let daemon_mean = |p: &Phase| if daemon { Value::Float(mean(p)) } else { Value::None };
    let maximum = THREADS_MAXIMUM.load(Ordering::Relaxed);
    let busy = (now.busy - prev.busy).max(0.0);
    let per_thread: Vec<u64> = now.completed.iter().enumerate().map(|(i, c)| c.saturating_sub(prev.completed.get(i).copied().unwrap_or(0))).collect();
    // Threads that finished a request in the interval, or are in one now (at least).
    let active_threads = (per_thread.iter().filter(|c| **c > 0).count() as u64).max(counts().active);
    let (cpu_user, cpu_system) = (per_second(now.cpu.0 - prev.cpu.0).max(0.0), per_second(now.cpu.1 - prev.cpu.1).max(0.0));
    let list = |p: &Phase| Value::List(p.buckets.to_vec());
    vec![
        ("pid", Value::Int(i64::from(std::process::id()))),
        ("start_time", Value::Float(prev.at)),
        ("stop_time", Value::Float(now.at)),
        ("sample_period", Value::Float(period)),
        ("request_count", Value::Int(n as i64)),
        ("request_throughput", Value::Float(per_second(n as f64))),
        ("request_threads", Value::Int(now.completed.len() as i64)),
        ("request_threads_maximum", Value::Int(maximum as i64)),
        ("request_threads_started", Value::Int(now.completed.len() as i64)),
        ("request_threads_active", Value::Int(active_threads as i64)),
        ("request_threads_completed", Value::List(per_thread)),
        ("capacity_utilization", Value::Float(if period > 0.0 { busy / period / maximum as f64 } else { 0.0 })),
        ("server_time", Value::Float(mean(&t.server))),
        ("queue_time", daemon_mean(&t.queue)),
        ("daemon_time", daemon_mean(&t.daemon)),
        ("application_time", Value::Float(mean(&t.application))),
        ("request_time", Value::Float(mean(&t.request))),
        ("input_read_time", Value::Float(mean(&t.input_read))),
        ("output_write_time", Value::Float(mean(&t.output_write))),
        ("gil_wait_time", Value::Float(mean(&t.gil_wait))),
        ("gil_wait_count", Value::Int(t.gil_wait_count as i64)),
        ("server_time_buckets", list(&t.server)),
        ("queue_time_buckets", list(&t.queue)),
        ("daemon_time_buckets", list(&t.daemon)),
        ("application_time_buckets", list(&t.application)),
        ("request_time_buckets", list(&t.request)),
        ("input_read_time_buckets", list(&t.input_read)),
        ("output_write_time_buckets", list(&t.output_write)),
        ("gil_wait_time_buckets", list(&t.gil_wait)),
        ("input_bytes", Value::Int(t.input_bytes as i64)),
        ("input_reads", Value::Int(t.input_reads as i64)),
        ("output_bytes", Value::Int(t.output_bytes as i64)),
        ("output_writes", Value::Int(t.output_writes as i64)),
        ("status_1xx", Value::Int(t.status[0] as i64)),
        ("status_2xx", Value::Int(t.status[1] as i64)),
        ("status_3xx", Value::Int(t.status[2] as i64)),
        ("status_4xx", Value::Int(t.status[3] as i64)),
        ("status_5xx", Value::Int(t.status[4] as i64)),
        ("cpu_user_utilization", Value::Float(cpu_user)),
        ("cpu_system_utilization", Value::Float(cpu_system)),
        ("cpu_utilization", Value::Float(cpu_user + cpu_system)),
        // mod_wsgi's older names for the same per-second rates.
        ("cpu_user_time", Value::Float(cpu_user)),
        ("cpu_system_time", Value::Float(cpu_system)),
        ("cpu_time", Value::Float(cpu_user + cpu_system)),
        ("memory_rss", Value::Int(crate::sys::process::current_rss() as i64)),
        ("memory_max_rss", Value::Int(crate::sys::process::peak_rss() as i64)),
    ]
}

// ---------------------------------------------------------------------------------------------
// Server metrics (Apache's scoreboard)
// ---------------------------------------------------------------------------------------------

/// A copy of Apache's scoreboard, for `mod_wsgi.server_metrics()`. Times are seconds since the
/// epoch (0.0: never).
#[derive(Debug, Clone, Default)]
pub struct ServerSnapshot {
    pub server_limit: i64,
    pub thread_limit: i64,
    pub running_generation: i64,
    pub restart_time: f64,
    pub current_time: f64,
    pub processes: Vec<ProcessSnapshot>,
}

/// One process slot of the scoreboard.
#[derive(Debug, Clone, Default)]
pub struct ProcessSnapshot {
    pub process_num: i64,
    pub pid: i64,
    pub generation: i64,
    pub quiescing: bool,
    pub workers: Vec<WorkerSnapshot>,
}

/// One worker (thread) slot of a process.
#[derive(Debug, Clone, Default)]
pub struct WorkerSnapshot {
    pub thread_num: i64,
    pub generation: i64,
    /// mod_status's letter: `_` waiting, `W` sending, `K` keep-alive, `.` open slot, ...
    pub status: char,
    pub access_count: i64,
    pub bytes_served: i64,
    pub start_time: f64,
    pub stop_time: f64,
    pub last_used: f64,
    pub client: String,
    pub request: String,
    pub vhost: String,
}

/// mod_status's letter for a scoreboard worker state (`SERVER_DEAD` .. `SERVER_IDLE_KILL`).
pub fn status_letter(state: u8) -> char {
    const LETTERS: &[u8; 11] = b".S_RWKLDCGI";
    LETTERS.get(usize::from(state)).map_or('?', |b| char::from(*b))
}

/// Where server metrics come from in this process: set in an Apache child whose configuration
/// has `WSGIServerMetrics On` and in a daemon group's processes with `server-metrics=On`; unset
/// (so `server_metrics()` is None) everywhere else.
static SERVER_SOURCE: OnceLock<fn() -> Option<ServerSnapshot>> = OnceLock::new();

/// Offers the scoreboard to `server_metrics()` in this process.
pub fn set_server_source(source: fn() -> Option<ServerSnapshot>) {
    let _ = SERVER_SOURCE.set(source);
}

/// The scoreboard now, if this process offers it.
pub fn server_snapshot() -> Option<ServerSnapshot> {
    SERVER_SOURCE.get().and_then(|f| f())
}

#[cfg(test)]
mod tests {
    #[test]
    fn scoreboard_states_read_as_mod_status_letters() {
        let letters: String = (0..11).map(super::status_letter).collect();
        assert_eq!(letters, ".S_RWKLDCGI");
        assert_eq!(super::status_letter(200), '?');
    }

    use super::*;

    #[test]
    fn bucket_boundaries() {
        assert_eq!(bucket(0.0), 0);
        assert_eq!(bucket(0.0009), 0);
        assert_eq!(bucket(0.001), 0, "[1, 1.25) ms");
        assert_eq!(bucket(0.00125), 1);
        assert_eq!(bucket(0.0019), 3);
        assert_eq!(bucket(0.002), 4, "a boundary goes up");
        assert_eq!(bucket(0.003), 6, "[3, 3.5) ms");
        assert_eq!(bucket(1.0), 39, "1000 ms is in [896, 1024) of octave 9");
        assert_eq!(bucket(65.535), 63);
        assert_eq!(bucket(65.536), 64);
        assert_eq!(bucket(1e9), 64);
        assert_eq!(bucket(-1.0), 0);
        assert_eq!(bucket(f64::NAN), 0);
        // Monotonic.
        let mut last = 0;
        for i in 0..100_000 {
            let b = bucket(i as f64 * 0.001);
            assert!(b >= last && b < BUCKETS);
            last = b;
        }
    }

    #[test]
    fn phases_embedded_and_daemon() {
        let embedded = Sample { request_start: 100.0, application_start: 100.5, application_finish: 101.5, ..Default::default() };
        assert_eq!(embedded.phases(), (0.5, 0.0, 0.0, 1.0));
        let daemon = Sample { request_start: 100.0, queue_start: 100.25, daemon_start: 100.5, application_start: 101.0, application_finish: 103.0, ..Default::default() };
        assert_eq!(daemon.phases(), (0.25, 0.25, 0.5, 2.0));
    }

    #[test]
    fn slots_count_requests_and_busy_time() {
        let before = counts();
        let t = begin();
        let id = t.thread_id();
        let mid = counts();
        assert!(mid.active >= 1);
        std::thread::sleep(std::time::Duration::from_millis(20));
        end(t);
        let after = counts();
        assert_eq!(after.request_count, before.request_count + 1);
        assert!(after.busy_time >= before.busy_time + 0.015, "{before:?} {after:?}");
        let t2 = begin();
        assert_eq!(t2.thread_id(), id, "one slot per thread");
        assert!(t2.thread_requests() >= 1);
        end(t2);
        let other = std::thread::spawn(|| {
            let t = begin();
            let id = t.thread_id();
            end(t);
            id
        })
        .join()
        .unwrap();
        assert_ne!(other, id);
    }

    fn get<'a>(items: &'a [(&'static str, Value)], k: &str) -> &'a Value {
        &items.iter().find(|(n, _)| *n == k).unwrap_or_else(|| panic!("no {k}")).1
    }

    #[test]
    fn request_metrics_intervals_per_reader() {
        start_recording(1);
        start_recording(1);
        let s = Sample { request_start: 10.0, application_start: 10.002, application_finish: 10.0125, output_bytes: 5, output_writes: 1, status: 200, ..Default::default() };
        record(&s);
        record(&Sample { status: 0, ..s.clone() });
        let m = request_metrics(1).unwrap();
        assert_eq!(get(&m, "request_count"), &Value::Int(2));
        assert_eq!(get(&m, "output_bytes"), &Value::Int(10));
        assert_eq!(get(&m, "status_2xx"), &Value::Int(1));
        assert_eq!(get(&m, "status_5xx"), &Value::Int(1));
        match get(&m, "application_time_buckets") {
            Value::List(b) => {
                assert_eq!(b.len(), BUCKETS);
                assert_eq!(b[bucket(0.0105)], 2);
            }
            v => panic!("{v:?}"),
        }
        // The same reader's next interval starts after the previous call.
        let again = request_metrics(1).unwrap();
        assert_eq!(get(&again, "request_count"), &Value::Int(0));
        // Another reader that never started recording sees everything since recording started.
        let other = request_metrics(2).unwrap();
        assert_eq!(get(&other, "request_count"), &Value::Int(2));
        for k in ["sample_period", "capacity_utilization", "request_throughput", "gil_wait_time", "input_read_time", "memory_rss"] {
            let _ = get(&m, k);
        }
    }

    #[test]
    fn process_metrics_items() {
        mark_process_start();
        let m = process_metrics();
        for k in ["pid", "request_count", "request_busy_time", "current_time", "running_time", "restart_time", "cpu_user_time", "cpu_system_time", "memory_max_rss", "memory_rss", "request_threads", "active_requests", "threads"] {
            let _ = get(&m, k);
        }
    }
}

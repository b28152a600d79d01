//! A daemon worker process: Python, `threads` request threads and a monitor.
//!
//! Threads share the group's listening socket and this process's idle connections through a
//! leader/follower dispatcher: one thread at a time polls them, takes a ready connection, hands
//! the poll over and serves one request. An idle reused connection therefore never pins a thread.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use super::GroupRuntime;
use super::control::{self, Activity, Limits, RestartReason, RunningRequest};
use super::io::DaemonIo;
use crate::protocol::fdpass::FrameReader;
use crate::protocol::{self, EndKind, Frame};
use crate::python::{interp, interrupt, pool, scripts};
use crate::sys;
use crate::sys::epoll::{self, Epoll};
use crate::wsgi::{self, environ::ProcessInfo, environ::RequestInfo};

/// Set by SIGTERM/SIGINT.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);


/// The process limits of a daemon group, applied as a worker process starts: cpu-priority=,
/// memory-limit= (RLIMIT_DATA), virtual-memory-limit= (RLIMIT_AS) and cpu-time-limit=
/// (RLIMIT_CPU: SIGXCPU at the limit starts a graceful restart; the hard limit, which kills, is
/// past the time that restart may take).
fn apply_process_limits(spec: &crate::config::DaemonProcess) {
    let warn = |what: &str, e: std::io::Error| {
        tracing::warn!(target: "wsgi", "daemon process group '{}' (pid {}): cannot apply {what}: {e}", spec.name, std::process::id());
    };
    if spec.cpu_priority != 0 {
        if let Err(e) = sys::process::set_priority(spec.cpu_priority) {
            warn("cpu-priority", e);
        }
    }
    if let Some(l) = spec.memory_limit {
        if let Err(e) = sys::process::set_limit(libc::RLIMIT_DATA, l, l) {
            warn("memory-limit", e);
        }
    }
    if let Some(l) = spec.virtual_memory_limit {
        if let Err(e) = sys::process::set_limit(libc::RLIMIT_AS, l, l) {
            warn("virtual-memory-limit", e);
        }
    }
    if let Some(t) = spec.cpu_time_limit {
        let soft = t.as_secs().max(1);
        let hard = soft + (spec.graceful_timeout + spec.shutdown_timeout).as_secs() + 5;
        let set = sys::signal::record_on(&[libc::SIGXCPU]).and_then(|_| sys::process::set_limit(libc::RLIMIT_CPU, soft, hard));
        if let Err(e) = set {
            warn("cpu-time-limit", e);
        }
    }
}

/// memory-limit= / virtual-memory-limit=: starts a graceful restart (one WR0138 line naming
/// the limit) once memory use nears the limit. `true`: this process is restarting.
fn check_memory(spec: &crate::config::DaemonProcess, st: &State) -> bool {
    if spec.memory_limit.is_none() && spec.virtual_memory_limit.is_none() {
        return false;
    }
    let Ok(sizes) = sys::process::memory_sizes() else { return false };
    match control::memory_check(spec.memory_limit, spec.virtual_memory_limit, sizes, st.memory_baseline.get().copied().unwrap_or_default()) {
        Some(reason) => {
            if !st.draining.load(Ordering::SeqCst) {
                tracing::warn!(target: "wsgi", "{}: daemon process '{}' (pid {}): {reason}; it is replaced once its running requests finish", crate::codes::PROCESS_LIMIT, spec.name, std::process::id());
            }
            st.drain(reason);
            true
        }
        None => false,
    }
}

/// Installs this process's signal dispositions (replacing Apache's, inherited through fork):
/// SIGTERM and SIGINT set [`SHUTDOWN`], the other signals Apache uses are ignored, and the mask
/// inherited from Apache is cleared.
pub fn install_signals() {
    let _ = sys::signal::set_flag_on(&[libc::SIGTERM, libc::SIGINT], &SHUTDOWN);
    // SIGUSR2 evicts a worker (replaced, its requests given eviction-timeout); SIGXCPU
    // (cpu-time-limit) is recorded too. Recorded, not flagged: SIGTERM/SIGINT own the flag.
    let _ = sys::signal::record_on(&[libc::SIGUSR2]);
    for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGWINCH, libc::SIGPIPE] {
        let _ = sys::signal::ignore(sig);
    }
    let _ = sys::signal::set_default(libc::SIGCHLD);
    let _ = sys::signal::set_process_mask(&sys::signal::SigSet::empty());
}

/// A request running in this process.
struct Running {
    started: Instant,
    /// Its application group (`""`: the main interpreter).
    group: String,
    script: String,
    /// Its thread, while that thread runs (or waits in) Python for it: set and cleared with the
    /// GIL held, so an interruption sent with the GIL held finds it still in the request.
    thread: Option<interrupt::PyThread>,
    /// When it was found stuck and an interruption was sent for it.
    interrupted: Option<Instant>,
    /// mod_wsgi.RequestTimeout was scheduled in its thread (set with the GIL held).
    injected: bool,
}

impl Running {
    fn new(group: &str, script: &str) -> Self {
        Running { started: Instant::now(), group: group.to_string(), script: script.to_string(), thread: None, interrupted: None, injected: false }
    }
}

struct State {
    draining: AtomicBool,
    reason: Mutex<Option<RestartReason>>,
    active: AtomicUsize,
    served: AtomicU64,
    started: Instant,
    last_activity: Mutex<Instant>,
    /// Requests running now, by sequence number. The lock is never held while waiting for the
    /// GIL (it is taken with the GIL held, or without it, for a moment).
    running: Mutex<HashMap<u64, Running>>,
    seq: AtomicU64,
    /// Write end of the pipe to the manager ("start my replacement now").
    notify: OwnedFd,
    /// This process's slot on the group's capacity board (`None`: the board was full).
    slot: Option<usize>,
    rt: Arc<GroupRuntime>,
    /// Since when loading a script has failed with no load succeeding since (startup-timeout=).
    failing_since: Mutex<Option<Instant>>,
    /// Memory in use (address space, data) once the process had started up (request threads
    /// included).
    memory_baseline: std::sync::OnceLock<(u64, u64)>,
}

/// A request thread busy on the capacity board while it serves one request: the thread it uses
/// was taken before its connection was accepted, or reserved by the Apache child before it sent
/// the request on a pooled connection. It is given back at the end.
struct ThreadInUse<'a> {
    d: &'a Dispatcher,
    st: &'a State,
    done: bool,
}

impl<'a> ThreadInUse<'a> {
    fn new(d: &'a Dispatcher, st: &'a State) -> Self {
        ThreadInUse { d, st, done: false }
    }

    /// Gives the thread back now: called just before the last record of a response goes out,
    /// so that an Apache child that reuses the connection at once finds the thread free (the
    /// few instructions left before this thread polls again are not worth a fresh connection).
    fn release(&mut self) {
        if !std::mem::replace(&mut self.done, true) {
            self.d.thread_free(self.st);
        }
    }
}

impl Drop for ThreadInUse<'_> {
    fn drop(&mut self) {
        self.release();
    }
}

impl State {
    fn drain(&self, reason: RestartReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            tracing::info!(target: "wsgi", "Daemon process {} restarting: {reason}.", std::process::id());
            *r = Some(reason);
            let pid = std::process::id().to_ne_bytes();
            // A 4-byte write to our pipe (atomic below PIPE_BUF); failure is harmless (the
            // manager then replaces us when we exit).
            let _ = sys::fd::write(self.notify.as_fd(), &pid);
        }
        self.draining.store(true, Ordering::SeqCst);
        // Nothing may be reserved on a process that stops taking requests.
        if let Some(s) = self.slot {
            self.rt.board.close(s);
        }
    }

    fn activity(&self) -> Activity {
        Activity {
            started: self.started,
            served: self.served.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed),
            last_activity: *self.last_activity.lock().unwrap_or_else(|e| e.into_inner()),
            running: self
                .running
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(id, r)| RunningRequest { id: *id, started: r.started, interrupted: r.interrupted })
                .collect(),
        }
    }

    /// The application group of the request running longest (`""` when none runs).
    fn oldest_group(&self) -> String {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.values().min_by_key(|r| r.started).map(|r| r.group.clone()).unwrap_or_default()
    }

    /// The application groups other than `%{GLOBAL}` of requests running for at least `age`.
    fn sub_interpreter_groups_running(&self, age: Duration) -> Vec<String> {
        let mut groups: Vec<String> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|r| !r.group.is_empty() && r.started.elapsed() >= age)
            .map(|r| r.group.clone())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }
}

struct Conn {
    /// A second handle on `stream` for the request I/O object, made once per connection (not
    /// a `dup` per request).
    io_stream: Option<Arc<UnixStream>>,
    stream: UnixStream,
    reader: FrameReader,
    greeted: bool,
    /// Whether the descriptor is in the epoll set (armed or disarmed).
    registered: bool,
    /// Whether this connection holds a free thread taken on the capacity board when it was
    /// accepted (until its first request uses it).
    holds_thread: bool,
    /// Process id of the Apache child at the other end (0 until greeted).
    peer_pid: u32,
}

/// Marks the listening socket in epoll events.
const LISTEN: u64 = u64::MAX;

/// Hands ready connections to request threads: one epoll set holds the listening socket and
/// every idle connection, each armed once (EPOLLONESHOT), so each readiness wakes one thread.
///
/// Idle connections are keyed by their descriptor number, which is also their epoll token: the
/// connection (and so the descriptor) stays open while it is in the map.
///
/// A thread takes a free thread on the capacity board before it accepts a new connection; when
/// none is free (all reserved by Apache children for requests on pooled connections) the
/// listening socket is parked (left disarmed) until a thread comes free, so new connections
/// wait for, or go to, processes that can serve them.
struct Dispatcher {
    epoll: Epoll,
    listener: OwnedFd,
    idle: Mutex<HashMap<RawFd, Conn>>,
    parked: AtomicBool,
}

impl Dispatcher {
    fn new(listener: OwnedFd) -> std::io::Result<Dispatcher> {
        let epoll = Epoll::new()?;
        epoll.add(listener.as_fd(), epoll::READABLE_ONESHOT, LISTEN)?;
        Ok(Dispatcher { epoll, listener, idle: Mutex::new(HashMap::new()), parked: AtomicBool::new(false) })
    }

    /// A request thread is free again: its thread goes back on the board, and the listening
    /// socket is armed again if it was parked for want of one.
    fn thread_free(&self, st: &State) {
        if let Some(s) = st.slot {
            st.rt.board.give(s);
        }
        std::sync::atomic::fence(Ordering::SeqCst);
        self.unpark(st);
    }

    fn unpark(&self, st: &State) {
        let free = st.slot.is_none_or(|s| st.rt.board.free(s) > 0);
        if free && self.parked.load(Ordering::Acquire) && self.parked.swap(false, Ordering::AcqRel) {
            let _ = self.epoll.modify(self.listener.as_fd(), epoll::READABLE_ONESHOT, LISTEN);
        }
    }

    /// Waits for a new connection or a request on an idle one. `None` once draining.
    fn next(&self, st: &State) -> Option<Conn> {
        loop {
            if st.draining.load(Ordering::SeqCst) {
                self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                return None;
            }
            let Ok(Some(token)) = self.epoll.wait_one(Duration::from_millis(200)) else {
                // A wake-up missed between parking and a thread coming free costs at most this.
                self.unpark(st);
                continue;
            };
            if token == LISTEN {
                if let Some(s) = st.slot {
                    if !st.rt.board.try_take(s) {
                        // Every free thread is promised to a pooled request: accept nothing
                        // until one comes free (checked again here in case one just did).
                        self.parked.store(true, Ordering::SeqCst);
                        std::sync::atomic::fence(Ordering::SeqCst);
                        self.unpark(st);
                        continue;
                    }
                }
                let accepted = sys::socket::accept(self.listener.as_fd());
                if let Err(e) = &accepted {
                    if matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                        tracing::warn!(target: "wsgi", "daemon process {} is out of file descriptors; waiting before accepting more connections", std::process::id());
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                let _ = self.epoll.modify(self.listener.as_fd(), epoll::READABLE_ONESHOT, LISTEN);
                match accepted {
                    Ok(fd) => {
                        let stream = UnixStream::from(fd);
                        return Some(Conn { io_stream: None, stream, reader: FrameReader::default(), greeted: false, registered: false, holds_thread: st.slot.is_some(), peer_pid: 0 });
                    }
                    // Another process took it: the thread taken for it is free again.
                    Err(_) => self.thread_free(st),
                }
            } else if let Some(c) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).remove(&(token as RawFd)) {
                return Some(c);
            }
        }
    }

    fn give_back(&self, mut c: Conn) {
        let fd = c.stream.as_raw_fd();
        let registered = std::mem::replace(&mut c.registered, true);
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let c = idle.entry(fd).insert_entry(c).into_mut();
        let armed = if registered {
            self.epoll.modify(c.stream.as_fd(), epoll::READABLE_ONESHOT, fd as u64)
        } else {
            self.epoll.add(c.stream.as_fd(), epoll::READABLE_ONESHOT, fd as u64)
        };
        if armed.is_err() {
            idle.remove(&fd);
        }
    }
}

/// The uid and pid of the process at the other end of `s`.
fn peer_uid(s: &UnixStream) -> Option<(u32, i32)> {
    sys::socket::peer_cred(s.as_fd()).ok().map(|c| (c.uid, c.pid))
}

/// Checks the peer and the handshake. Refusals are logged and the connection dropped.
fn greet(rt: &GroupRuntime, c: &mut Conn) -> bool {
    let name = &rt.spec.name;
    match peer_uid(&c.stream) {
        Some((uid, pid)) if uid == rt.apache_uid || uid == 0 => c.peer_pid = pid.max(0) as u32,
        Some((uid, pid)) => {
            tracing::warn!(target: "wsgi", "{}: daemon process group '{name}' refused a connection from pid {pid} with uid {uid}: only Apache's user (uid {}) may connect", crate::codes::PEER_REFUSED, rt.apache_uid);
            let _ = protocol::write_frame(&mut c.stream, &Frame::Refused("peer not allowed".into()));
            return false;
        }
        None => return false,
    }
    let _ = c.stream.set_read_timeout(Some(Duration::from_secs(10)));
    // response-socket-timeout= (else socket-timeout=): how long writing the response to an
    // Apache child that does not read it may block.
    let _ = c.stream.set_write_timeout(rt.spec.response_socket_timeout.or(rt.spec.socket_timeout));
    let ok = match protocol::read_frame(&mut c.stream) {
        Ok(Some(Frame::Hello { version, secret })) if version == protocol::VERSION && super::same_secret(&secret, &rt.secret) => true,
        Ok(Some(Frame::Hello { version, .. })) if version != protocol::VERSION => {
            tracing::warn!(target: "wsgi", "{}: daemon process group '{name}' refused a peer speaking protocol version {version} (this is {}); restart Apache so every process runs the same module", crate::codes::PEER_REFUSED, protocol::VERSION);
            false
        }
        other => {
            tracing::warn!(target: "wsgi", "{}: daemon process group '{name}' refused a connection without the group's secret ({})", crate::codes::PEER_REFUSED, match other { Ok(Some(f)) => format!("first frame {:?}", std::mem::discriminant(&f)), Ok(None) => "closed".into(), Err(e) => e.to_string() });
            false
        }
    };
    // A peer that stops half-way through a record must not hold a thread forever.
    let _ = c.stream.set_read_timeout(Some(rt.spec.socket_timeout.unwrap_or(Duration::from_secs(300))));
    if ok {
        c.greeted = protocol::write_frame(&mut c.stream, &Frame::HelloOk { pid: std::process::id() }).is_ok();
    } else {
        let _ = protocol::write_frame(&mut c.stream, &Frame::Refused("handshake failed".into()));
    }
    ok && c.greeted
}

/// Serves one request from `c`. Returns whether the connection may be reused.
fn serve_one(rt: &GroupRuntime, st: &State, d: &Dispatcher, c: &mut Conn) -> bool {
    let req = match c.reader.next(&c.stream).map(|o| o.map(|(f, _)| f)) {
        Ok(Some(Frame::Request(r))) => r,
        Ok(None) => return false,
        Ok(Some(other)) => {
            tracing::warn!(target: "wsgi", "{}: protocol error from an Apache child: expected a request, got {other:?}", crate::codes::PEER_REFUSED);
            return false;
        }
        Err(_) => return false,
    };
    let daemon_start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
    // The thread this request uses: taken when the connection was accepted, or reserved by
    // the Apache child.
    c.holds_thread = false;
    let mut thread = ThreadInUse::new(d, st);
    // Also before the request: the previous one may have grown memory past the limit while
    // its response was on its way (and this request then reached another thread).
    if st.draining.load(Ordering::SeqCst) || check_memory(&rt.spec, st) {
        let _ = protocol::write_frame(&mut c.stream, &Frame::Retry("daemon process is restarting".into()));
        return false;
    }
    if req.script_reloading {
        if let Some(loaded) = scripts::loaded_mtime(&req.application_group, &req.script) {
            if loaded != req.mtime {
                st.drain(RestartReason::ScriptTouched(req.script.clone()));
                let _ = protocol::write_frame(&mut c.stream, &Frame::Retry("script changed; daemon process is restarting".into()));
                return false;
            }
        }
    }
    if protocol::write_frame(&mut c.stream, &Frame::Started).is_err() {
        return false;
    }
    let seq = st.seq.fetch_add(1, Ordering::Relaxed);
    st.active.fetch_add(1, Ordering::SeqCst);
    st.running.lock().unwrap_or_else(|e| e.into_inner()).insert(seq, Running::new(&req.application_group, &req.script));

    let keep = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_request(rt, st, seq, c, &req, &mut thread, daemon_start))) {
        Ok(k) => k,
        Err(_) => {
            tracing::error!(target: "wsgi", "{}: internal error while running a request for '{}'; the daemon process restarts", crate::codes::INTERNAL_PANIC, req.script);
            st.drain(RestartReason::Shutdown);
            false
        }
    };

    st.running.lock().unwrap_or_else(|e| e.into_inner()).remove(&seq);
    *st.last_activity.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    st.active.fetch_sub(1, Ordering::SeqCst);
    let served = st.served.fetch_add(1, Ordering::SeqCst) + 1;
    if rt.spec.maximum_requests > 0 && served >= rt.spec.maximum_requests {
        st.drain(RestartReason::MaximumRequests(rt.spec.maximum_requests));
        return false;
    }
    if check_memory(&rt.spec, st) {
        return false;
    }
    keep
}

/// Marks request `seq` as running Python on this thread (so that it can be interrupted) for as
/// long as it lives; made and dropped with the GIL held in the request's interpreter. An
/// interruption that was sent but not raised by the end is taken back, so that it cannot hit
/// the thread's next request.
struct Interruptible<'a, 'py> {
    st: &'a State,
    seq: u64,
    py: Python<'py>,
}

impl<'a, 'py> Interruptible<'a, 'py> {
    fn new(py: Python<'py>, st: &'a State, seq: u64) -> Self {
        if let Some(r) = st.running.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&seq) {
            r.thread = Some(interrupt::this_thread(py));
        }
        Interruptible { st, seq, py }
    }
}

impl Drop for Interruptible<'_, '_> {
    fn drop(&mut self) {
        let injected = match self.st.running.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&self.seq) {
            Some(r) => {
                r.thread = None;
                r.injected
            }
            None => false,
        };
        if injected {
            interrupt::discard_pending(self.py);
        }
    }
}

fn run_request(rt: &GroupRuntime, st: &State, seq: u64, c: &mut Conn, req: &protocol::Request, thread: &mut ThreadInUse<'_>, daemon_start: i64) -> bool {
    let stream = match &c.io_stream {
        Some(s) => s.clone(),
        None => match c.stream.try_clone() {
            Ok(s) => c.io_stream.insert(Arc::new(s)).clone(),
            Err(_) => return false,
        },
    };
    let io = DaemonIo::new(stream, req.header_only, req.client.clone());
    let flags = io.flags();
    let cgi: Vec<(&str, &[u8])> = req.cgi.iter().collect();
    let call = wsgi::Call {
        cgi: &cgi,
        info: RequestInfo {
            url_scheme: &req.url_scheme,
            application_group: &req.application_group,
            callable_object: &req.callable,
            script_reloading: req.script_reloading,
            request_id: &req.request_id,
        },
        script: &req.script,
        timing: wsgi::Timing { request_start: 0, queue_start: req.queue_start, daemon_start, server_pid: c.peer_pid },
    };
    let _ = rt;
    let mut finishing: Option<Box<dyn wsgi::RequestIo>> = None;
    let group = req.application_group.as_str();
    let entered = pool::enter(group, |py| {
        let _interruptible = Interruptible::new(py, st, seq);
        match scripts::application(py, group, &req.script, req.mtime, req.script_reloading, &req.callable) {
            Ok(app) => {
                *st.failing_since.lock().unwrap_or_else(|e| e.into_inner()) = None;
                let (outcome, io) = wsgi::serve(py, &app, &call, Box::new(io));
                finishing = io;
                Some(outcome)
            }
            Err(scripts::LoadError::Failed(lines)) => {
                st.failing_since.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(Instant::now);
                for l in lines {
                    tracing::error!(target: "wsgi", "[client {}] {l}", req.client);
                }
                None
            }
            Err(scripts::LoadError::NoCallable(msg)) => {
                tracing::error!(target: "wsgi", "[client {}] {msg}", req.client);
                None
            }
        }
    });
    let outcome = entered.unwrap_or_else(|e| {
        tracing::error!(target: "wsgi", "[client {}] {e}", req.client);
        None
    });
    // Outside Python: push out the batched records (with the end record when complete).
    let complete = outcome == Some(wsgi::Outcome::Complete);
    thread.release();
    if let Some(mut io) = finishing {
        let _ = if complete { io.finish() } else { io.flush_pending() };
    }
    let (broken, aborted) = flags.get();
    if complete {
        return !broken;
    }
    if broken {
        return false;
    }
    let end = match outcome {
        None | Some(wsgi::Outcome::Failed) => EndKind::Failed,
        Some(wsgi::Outcome::Complete) => EndKind::Complete,
        Some(wsgi::Outcome::ClientGone) => EndKind::ClientGone,
        Some(wsgi::Outcome::TimedOut) => EndKind::TimedOut,
        Some(wsgi::Outcome::BodyTimedOut) => EndKind::BodyTimedOut,
        Some(wsgi::Outcome::Cut) => {
            if !aborted {
                let _ = protocol::write_frame(&mut c.stream, &Frame::Abort("response cut short".into()));
            }
            return false;
        }
    };
    protocol::write_frame(&mut c.stream, &Frame::End(end)).is_ok() && end != EndKind::ClientGone
}

fn request_thread(rt: Arc<GroupRuntime>, st: Arc<State>, d: Arc<Dispatcher>) {
    while let Some(mut c) = d.next(&st) {
        let keep = (c.greeted || greet(&rt, &mut c)) && serve_one(&rt, &st, &d, &mut c);
        // A new connection that sent no request gives back the thread taken for it.
        if std::mem::take(&mut c.holds_thread) {
            d.thread_free(&st);
        }
        if keep && !st.draining.load(Ordering::SeqCst) {
            d.give_back(c);
        }
    }
}

/// Sends mod_wsgi.RequestTimeout to the thread of request `seq`, found running past its request
/// timeout (in the interpreter the request runs in; this waits for the GIL). Logs what was done.
fn interrupt_request(rt: &GroupRuntime, st: &State, seq: u64) {
    enum Undone {
        NotInPython,
        Failed(String),
    }
    let Some((group, script, started)) = st.running.lock().unwrap_or_else(|e| e.into_inner()).get(&seq).map(|r| (r.group.clone(), r.script.clone(), r.started)) else {
        return; // finished meanwhile
    };
    let spec = &rt.spec;
    let threads = spec.threads.max(1);
    let allowed = spec.request_timeout.map(|t| control::fire_point(t, threads as usize)).unwrap_or_default();
    let past = format!(
        "past the {:.1}s that request-timeout={} allows with {threads} thread(s)",
        allowed.as_secs_f64(),
        spec.request_timeout.unwrap_or_default().as_secs()
    );
    let grace = spec.interrupt_timeout.unwrap_or_default().as_secs();
    let code = crate::codes::REQUEST_INTERRUPTED;
    let (name, pid) = (&spec.name, std::process::id());
    let undone = pool::enter(&group, |py| {
        let class = match interrupt::request_timeout_class(py) {
            Ok(c) => c,
            Err(e) => return Some(Undone::Failed(format!("mod_wsgi.RequestTimeout cannot be found: {e}"))),
        };
        // Where it is stuck, read before it is interrupted (this runs Python code, so it comes
        // before the lock, and the request may finish meanwhile: checked below).
        let target = st.running.lock().unwrap_or_else(|e| e.into_inner()).get(&seq).and_then(|r| r.thread);
        let stack = target.and_then(|t| interrupt::stack(py, t.ident()).ok()).unwrap_or_default();
        let target = {
            let mut running = st.running.lock().unwrap_or_else(|e| e.into_inner());
            let r = running.get_mut(&seq)?; // finished meanwhile
            let Some(target) = r.thread else { return Some(Undone::NotInPython) };
            if let Err(e) = interrupt::raise_in(py, target, &class) {
                return Some(Undone::Failed(e));
            }
            r.injected = true;
            target
        };
        // Logged before the GIL is given up, so before the thread can raise it.
        let ran = started.elapsed().as_secs_f64();
        tracing::warn!(target: "wsgi", "{code}: Injected RequestTimeout into thread {} of daemon process group '{name}' (pid {pid}): its request for '{script}' ran {ran:.1}s, {past}; the process restarts if the thread has not returned within interrupt-timeout ({grace}s).", target.ident());
        for l in stack {
            tracing::warn!(target: "wsgi", "{code}:   {l}");
        }
        None
    });
    let ran = started.elapsed().as_secs_f64();
    let why = match undone {
        Ok(None) => return,
        Ok(Some(Undone::NotInPython)) => "it is not running Python code, where RequestTimeout could reach it".to_string(),
        Ok(Some(Undone::Failed(why))) | Err(why) => format!("RequestTimeout cannot be sent to its thread: {why}"),
    };
    tracing::warn!(target: "wsgi", "{code}: a request for '{script}' in daemon process group '{name}' (pid {pid}) ran {ran:.1}s, {past}, and {why}; the process restarts if it has not returned within interrupt-timeout ({grace}s).");
}

/// Logs the Python stack of every thread (for a request that timed out), read from the
/// interpreter of application group `group` (the stuck request's: waiting for the GIL as one of
/// its threads is what makes a thread looping in Python code there give the GIL up, see
/// [`pool`]).
fn dump_stacks(group: String) {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("wsgi-stacks".into()).spawn(move || {
        let lines = pool::enter(&group, |py| -> PyResult<Vec<String>> {
            let frames = py.import("sys")?.call_method0("_current_frames")?;
            let tb = py.import("traceback")?;
            let mut out = vec![];
            for item in frames.call_method0("items")?.try_iter()? {
                let (tid, frame): (u64, Bound<'_, PyAny>) = item?.extract()?;
                out.push(format!("Thread {tid}:"));
                let stack: Vec<String> = tb.call_method1("format_stack", (frame,))?.extract()?;
                out.extend(stack.concat().lines().map(|l| format!("  {l}")));
            }
            Ok(out)
        });
        let _ = tx.send(lines);
    });
    if spawned.is_err() {
        tracing::error!(target: "wsgi", "{}: cannot start a thread to log the Python stacks", crate::codes::REQUEST_TIMEOUT);
        return;
    }
    match rx.recv_timeout(Duration::from_secs(3)) {
        Ok(Ok(Ok(lines))) => {
            for l in lines {
                tracing::error!(target: "wsgi", "{}: {l}", crate::codes::REQUEST_TIMEOUT);
            }
        }
        _ => tracing::error!(target: "wsgi", "{}: could not get the Python stacks (the GIL is held by a stuck thread)", crate::codes::REQUEST_TIMEOUT),
    }
}

/// Runs a worker process; never returns.
///
/// `notify` is the write end of the pipe to the manager.
pub fn worker_main(rt: Arc<GroupRuntime>, notify: OwnedFd) -> ! {
    let _ = sys::process::set_parent_death_signal(libc::SIGKILL);
    install_signals();
    let spec = &rt.spec;
    apply_process_limits(spec);
    tracing::info!(target: "wsgi", "Starting process '{}' with pid={}, uid={}, gid={} and threads={}.", spec.name, std::process::id(), sys::process::uid(), sys::process::gid(), spec.threads);
    let opts = interp::InitOptions {
        // A group without python-home= uses the server-wide WSGIPythonHome, as with mod_wsgi.
        python_home: spec.python_home.clone().or_else(|| rt.global_python_home.clone()),
        python_path: spec.python_path.clone(),
        process: Some(ProcessInfo {
            multithread: spec.threads > 1,
            multiprocess: spec.multiprocess,
            process_group: spec.name.clone(),
            apache_version: rt.apache_version,
            maximum_processes: spec.processes.max(1),
            threads_per_process: spec.threads.max(1),
            mpm: rt.apache_mpm.clone(),
        }),
        allow_stdin: rt.allow_stdin,
        restrict_stdout: rt.restrict_stdout,
        python: crate::config::PythonSettings {
            eggs: spec.python_eggs.clone().or_else(|| rt.python.eggs.clone()),
            switch_interval: spec.switch_interval.or(rt.python.switch_interval),
            ..rt.python.clone()
        },
    };
    // lang= / locale=: the environment Python reads its encodings from at start-up (this
    // process is single-threaded until the request threads start below).
    if let Some(lang) = &spec.lang {
        let _ = sys::process::set_env("LANG", lang);
    }
    if let Some(locale) = &spec.locale {
        let _ = sys::process::set_env("LC_ALL", locale);
        let _ = sys::process::set_locale_all(locale);
    }
    tracing::info!(target: "wsgi", "Initializing Python {} in daemon process '{}' (pid {}).", interp::python_version(), spec.name, std::process::id());
    if let Err(e) = interp::initialize(&opts) {
        let hint = if spec.python_home.is_some() { "; check that python-home names a Python 3.11 virtualenv or installation readable by the daemon's user" } else { "" };
        tracing::error!(target: "wsgi", "{}: daemon process '{}' cannot initialise Python: {e}{hint}", crate::codes::PYTHON_INIT_FAILED, spec.name);
        // Exiting without running Apache's or Python's exit handlers.
        sys::process::exit_now(3);
    }
    for (path, group) in &rt.imports {
        if let Err(e) = pool::enter(group, |py| scripts::preload(py, group, path)) {
            tracing::error!(target: "wsgi", "{e}; WSGIImportScript '{path}' was not loaded");
        }
    }
    let now = Instant::now();
    let st = Arc::new(State {
        draining: AtomicBool::new(false),
        reason: Mutex::new(None),
        active: AtomicUsize::new(0),
        served: AtomicU64::new(0),
        started: now,
        last_activity: Mutex::new(now),
        running: Mutex::new(HashMap::new()),
        seq: AtomicU64::new(0),
        notify,
        slot: {
            let slot = rt.board.claim(std::process::id() as i32, spec.threads.max(1) as i32);
            if slot.is_none() {
                tracing::warn!(target: "wsgi", "daemon process '{}' (pid {}) found no free slot on the group's capacity board; Apache children will not reuse connections to it", spec.name, std::process::id());
            }
            slot
        },
        rt: rt.clone(),
        failing_since: Mutex::new(None),
        memory_baseline: std::sync::OnceLock::new(),
    });
    let listener = rt.take_listener().ok_or_else(|| std::io::Error::other("the group's listening socket is already closed in this process"));
    let d = match listener.and_then(Dispatcher::new) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!(target: "wsgi", "daemon process '{}' cannot set up its dispatcher: {e}", spec.name);
            // Leaving without Apache's or Python's exit handlers.
            sys::process::exit_now(3)
        }
    };
    // Request threads (and the threads they start) leave SIGTERM/SIGINT to the main thread:
    // blocked here while they are started, then this thread's mask is restored.
    let blocked = sys::signal::block_in_this_thread(&[libc::SIGTERM, libc::SIGINT]);
    let mut handles = Vec::new();
    for i in 0..spec.threads.max(1) {
        let (rt, st, d) = (rt.clone(), st.clone(), d.clone());
        let h = std::thread::Builder::new()
            .name(format!("wsgi-{i}"))
            .stack_size(spec.stack_size.map_or(8 << 20, |s| s as usize))
            .spawn(move || request_thread(rt, st, d));
        match h {
            Ok(h) => handles.push(h),
            Err(e) => tracing::error!(target: "wsgi", "daemon process '{}' cannot start request thread {i}: {e}", spec.name),
        }
    }
    drop(blocked);
    if spec.memory_limit.is_some() || spec.virtual_memory_limit.is_some() {
        let _ = st.memory_baseline.set(sys::process::memory_sizes().unwrap_or_default());
    }
    let limits = Limits {
        maximum_requests: spec.maximum_requests,
        restart_interval: spec.restart_interval,
        inactivity_timeout: spec.inactivity_timeout,
        request_timeout: spec.request_timeout,
        interrupt_timeout: spec.interrupt_timeout,
        threads: spec.threads.max(1) as usize,
    };
    // interrupt-timeout: stuck requests are interrupted by a thread of their own, so that the
    // loop below never waits for the GIL.
    let interrupter = match (spec.request_timeout, spec.interrupt_timeout) {
        (Some(_), Some(_)) => {
            let (tx, rx) = std::sync::mpsc::channel::<u64>();
            let (rt, st) = (rt.clone(), st.clone());
            let started = std::thread::Builder::new().name("wsgi-interrupt".into()).spawn(move || {
                interp::ensure_thread_state();
                for seq in rx {
                    interrupt_request(&rt, &st, seq);
                }
            });
            if let Err(e) = &started {
                tracing::error!(target: "wsgi", "{}: daemon process group '{}' cannot start its interrupt thread ({e}); stuck requests restart the process after interrupt-timeout", crate::codes::REQUEST_INTERRUPTED, spec.name);
            }
            started.ok().map(|_| tx)
        }
        _ => None,
    };
    // deadlock-timeout: a watchdog proves every second that the GIL can be taken.
    let gil_seen = Arc::new(Mutex::new(Instant::now()));
    if spec.deadlock_timeout.is_some() {
        let seen = gil_seen.clone();
        let _ = std::thread::Builder::new().name("wsgi-deadlock".into()).spawn(move || {
            interp::ensure_thread_state();
            loop {
                std::thread::sleep(Duration::from_secs(1));
                Python::attach(|_| {});
                *seen.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
            }
        });
    }
    let mut timed_out = false;
    let mut evicted = false;
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if SHUTDOWN.load(Ordering::SeqCst) {
            st.drain(RestartReason::Shutdown);
        }
        // startup-timeout=: scripts have failed to load for that long: try a fresh process.
        if let Some(t) = spec.startup_timeout {
            let since = *st.failing_since.lock().unwrap_or_else(|e| e.into_inner());
            if since.is_some_and(|s| s.elapsed() > t) && !st.draining.load(Ordering::SeqCst) {
                let reason = RestartReason::StartupTimeout(t);
                tracing::warn!(target: "wsgi", "{}: daemon process '{}' (pid {}): {reason}; it is replaced", crate::codes::PROCESS_LIMIT, spec.name, std::process::id());
                st.drain(reason);
            }
        }
        let recorded = sys::signal::take_recorded();
        if recorded.contains(&libc::SIGUSR2) {
            evicted = true;
            st.drain(RestartReason::Evicted);
        }
        if recorded.contains(&libc::SIGXCPU) && !st.draining.load(Ordering::SeqCst) {
            let reason = RestartReason::CpuTimeLimit(spec.cpu_time_limit.unwrap_or_default());
            tracing::warn!(target: "wsgi", "{}: daemon process '{}' (pid {}): {reason}; it is replaced once its running requests finish", crate::codes::PROCESS_LIMIT, spec.name, std::process::id());
            st.drain(reason);
        }
        if !st.draining.load(Ordering::SeqCst) {
            // Idle for a while: no thread is busy or promised, whatever the board says.
            let a = st.activity();
            if let Some(slot) = st.slot {
                if a.active == 0 && a.last_activity.elapsed() > Duration::from_secs(2) {
                    rt.board.reset(slot, spec.threads.max(1) as i32);
                }
            }
            let now = Instant::now();
            let stuck = control::to_interrupt(&limits, &a, now);
            if !stuck.is_empty() {
                let mut running = st.running.lock().unwrap_or_else(|e| e.into_inner());
                for seq in stuck {
                    // The interrupt-timeout clock starts now, whether or not the exception can
                    // be delivered (a thread that cannot be reached restarts the process then).
                    if let Some(r) = running.get_mut(&seq) {
                        r.interrupted = Some(now);
                        if let Some(tx) = &interrupter {
                            let _ = tx.send(seq);
                        }
                    }
                }
            }
            if let Some(reason) = control::check(&limits, &a, now) {
                if let RestartReason::RequestTimeout(t) | RestartReason::InterruptTimeout(t) = reason {
                    timed_out = true;
                    dump_stacks(st.oldest_group());
                    let option = match reason {
                        RestartReason::RequestTimeout(_) => "request-timeout",
                        _ => "interrupt-timeout",
                    };
                    let stuck_after = control::fire_point(spec.request_timeout.unwrap_or(t), limits.threads);
                    for group in st.sub_interpreter_groups_running(stuck_after) {
                        tracing::error!(target: "wsgi", "{}", pool::stuck_hint(&group, option));
                    }
                }
                st.drain(reason);
            }
        }
        if let Some(t) = spec.deadlock_timeout {
            let seen = *gil_seen.lock().unwrap_or_else(|e| e.into_inner());
            if seen.elapsed() > t + Duration::from_secs(1) {
                tracing::error!(target: "wsgi", "{}: daemon process '{}' (pid {}): the Python GIL could not be taken for {}s (deadlock-timeout); the process restarts", crate::codes::DEADLOCK_TIMEOUT, spec.name, std::process::id(), t.as_secs());
                for group in st.sub_interpreter_groups_running(Duration::ZERO) {
                    tracing::error!(target: "wsgi", "{}", pool::stuck_hint(&group, "deadlock-timeout"));
                }
                // A deadlocked interpreter cannot finish requests: leave now, without Apache's or
                // Python's exit handlers.
                sys::process::exit_now(4);
            }
        }
        if st.draining.load(Ordering::SeqCst) {
            break;
        }
    }
    let shutdown = SHUTDOWN.load(Ordering::SeqCst);
    let grace = if timed_out || shutdown {
        spec.shutdown_timeout
    } else if evicted {
        spec.eviction_timeout.unwrap_or(spec.graceful_timeout)
    } else {
        spec.graceful_timeout
    };
    let deadline = Instant::now() + grace;
    while st.active.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let left = st.active.load(Ordering::SeqCst);
    if left > 0 {
        tracing::warn!(target: "wsgi", "Daemon process '{}' (pid {}) exiting with {left} request(s) still running after {}s.", spec.name, std::process::id(), grace.as_secs());
    } else {
        tracing::info!(target: "wsgi", "Daemon process '{}' (pid {}) exiting after {} request(s).", spec.name, std::process::id(), st.served.load(Ordering::SeqCst));
        // Nothing runs Python any more: the application's atexit functions may run.
        let reason = st.reason.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or("shutdown_signal", RestartReason::shutdown_reason);
        interp::run_exit_hooks(reason);
    }
    // Leave at once: request threads may be blocked in Python or in the dispatcher.
    sys::process::exit_now(0)
}

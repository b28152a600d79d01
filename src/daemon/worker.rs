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
use super::control::{self, Activity, Limits, RestartReason};
use super::io::DaemonIo;
use crate::protocol::fdpass::FrameReader;
use crate::protocol::{self, EndKind, Frame};
use crate::python::{interp, pool, scripts};
use crate::sys;
use crate::sys::epoll::{self, Epoll};
use crate::wsgi::{self, environ::ProcessInfo, environ::RequestInfo};

/// Set by SIGTERM/SIGINT.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);

/// Installs this process's signal dispositions (replacing Apache's, inherited through fork):
/// SIGTERM and SIGINT set [`SHUTDOWN`], the other signals Apache uses are ignored, and the mask
/// inherited from Apache is cleared.
pub fn install_signals() {
    let _ = sys::signal::set_flag_on(&[libc::SIGTERM, libc::SIGINT], &SHUTDOWN);
    for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGPIPE] {
        let _ = sys::signal::ignore(sig);
    }
    let _ = sys::signal::set_default(libc::SIGCHLD);
    let _ = sys::signal::set_process_mask(&sys::signal::SigSet::empty());
}

struct State {
    draining: AtomicBool,
    reason: Mutex<Option<RestartReason>>,
    active: AtomicUsize,
    served: AtomicU64,
    started: Instant,
    last_activity: Mutex<Instant>,
    /// Requests running now: when each started, and in which application group.
    running: Mutex<HashMap<u64, (Instant, String)>>,
    seq: AtomicU64,
    /// Write end of the pipe to the manager ("start my replacement now").
    notify: OwnedFd,
    /// This process's slot on the group's capacity board (`None`: the board was full).
    slot: Option<usize>,
    rt: Arc<GroupRuntime>,
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
            oldest_running: self.running.lock().unwrap_or_else(|e| e.into_inner()).values().map(|(t, _)| *t).min(),
        }
    }

    /// The application groups other than `%{GLOBAL}` of requests running for at least `age`.
    fn sub_interpreter_groups_running(&self, age: Duration) -> Vec<String> {
        let mut groups: Vec<String> = self
            .running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter(|(t, g)| !g.is_empty() && t.elapsed() >= age)
            .map(|(_, g)| g.clone())
            .collect();
        groups.sort();
        groups.dedup();
        groups
    }
}

struct Conn {
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
                        return Some(Conn { stream, reader: FrameReader::default(), greeted: false, registered: false, holds_thread: st.slot.is_some(), peer_pid: 0 });
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
    if st.draining.load(Ordering::SeqCst) {
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
    st.running.lock().unwrap_or_else(|e| e.into_inner()).insert(seq, (Instant::now(), req.application_group.clone()));

    let keep = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_request(rt, c, &req, &mut thread, daemon_start))) {
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
    keep
}

fn run_request(rt: &GroupRuntime, c: &mut Conn, req: &protocol::Request, thread: &mut ThreadInUse<'_>, daemon_start: i64) -> bool {
    let Ok(stream) = c.stream.try_clone() else { return false };
    let io = DaemonIo::new(stream, req.header_only, req.client.clone());
    let flags = io.flags();
    let cgi: Vec<(&str, &[u8])> = req.cgi.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
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
    let entered = pool::enter(group, |py| match scripts::application(py, group, &req.script, req.mtime, false, &req.callable) {
        Ok(app) => {
            let (outcome, io) = wsgi::serve(py, &app, &call, Box::new(io));
            finishing = io;
            Some(outcome)
        }
        Err(scripts::LoadError::Failed(lines)) => {
            for l in lines {
                tracing::error!(target: "wsgi", "[client {}] {l}", req.client);
            }
            None
        }
        Err(scripts::LoadError::NoCallable(msg)) => {
            tracing::error!(target: "wsgi", "[client {}] {msg}", req.client);
            None
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

/// Logs the Python stack of every thread (for a request that timed out).
fn dump_stacks() {
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new().name("wsgi-stacks".into()).spawn(move || {
        interp::ensure_thread_state();
        let lines = Python::attach(|py| -> PyResult<Vec<String>> {
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
        Ok(Ok(lines)) => {
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
            .stack_size(8 << 20)
            .spawn(move || request_thread(rt, st, d));
        match h {
            Ok(h) => handles.push(h),
            Err(e) => tracing::error!(target: "wsgi", "daemon process '{}' cannot start request thread {i}: {e}", spec.name),
        }
    }
    drop(blocked);
    let limits = Limits {
        maximum_requests: spec.maximum_requests,
        restart_interval: spec.restart_interval,
        inactivity_timeout: spec.inactivity_timeout,
        request_timeout: spec.request_timeout,
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
    loop {
        std::thread::sleep(Duration::from_millis(50));
        if SHUTDOWN.load(Ordering::SeqCst) {
            st.drain(RestartReason::Shutdown);
        }
        if !st.draining.load(Ordering::SeqCst) {
            // Idle for a while: no thread is busy or promised, whatever the board says.
            let a = st.activity();
            if let Some(slot) = st.slot {
                if a.active == 0 && a.last_activity.elapsed() > Duration::from_secs(2) {
                    rt.board.reset(slot, spec.threads.max(1) as i32);
                }
            }
            if let Some(reason) = control::check(&limits, &a, Instant::now()) {
                if let RestartReason::RequestTimeout(t) = reason {
                    timed_out = true;
                    dump_stacks();
                    for group in st.sub_interpreter_groups_running(t) {
                        tracing::error!(target: "wsgi", "{}", pool::stuck_hint(&group, "request-timeout"));
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
    let grace = if timed_out || shutdown { spec.shutdown_timeout } else { spec.graceful_timeout };
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

//! A daemon worker process: Python, `threads` request threads and a monitor.
//!
//! Threads share the group's listening socket and this process's idle connections through a
//! leader/follower dispatcher: one thread at a time polls them, takes a ready connection, hands
//! the poll over and serves one request. An idle reused connection therefore never pins a thread.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
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
use crate::wsgi::{self, environ::ProcessInfo, environ::RequestInfo};

/// Set by SIGTERM/SIGINT.
pub static SHUTDOWN: AtomicBool = AtomicBool::new(false);

extern "C" fn on_term(_: libc::c_int) {
    SHUTDOWN.store(true, Ordering::SeqCst);
}

/// Installs this process's signal dispositions (replacing Apache's, inherited through fork).
pub fn install_signals() {
    // SAFETY: sigaction with a handler that only stores to an atomic (async-signal-safe); the
    // other signals Apache uses are ignored here, and the mask inherited from Apache is cleared.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_term as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        libc::sigaction(libc::SIGTERM, &sa, std::ptr::null_mut());
        libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut());
        for sig in [libc::SIGHUP, libc::SIGUSR1, libc::SIGUSR2, libc::SIGWINCH, libc::SIGPIPE] {
            libc::signal(sig, libc::SIG_IGN);
        }
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
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
    notify_fd: RawFd,
}

impl State {
    fn drain(&self, reason: RestartReason) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            tracing::info!(target: "wsgi", "Daemon process {} restarting: {reason}.", std::process::id());
            *r = Some(reason);
            let pid = std::process::id().to_ne_bytes();
            // SAFETY: a 4-byte write to our pipe (atomic below PIPE_BUF); failure is harmless
            // (the manager then replaces us when we exit).
            unsafe { libc::write(self.notify_fd, pid.as_ptr().cast(), pid.len()) };
        }
        self.draining.store(true, Ordering::SeqCst);
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
}

/// Marks the listening socket in epoll events.
const LISTEN: u64 = u64::MAX;

/// Hands ready connections to request threads: one epoll set holds the listening socket and
/// every idle connection, each armed once (EPOLLONESHOT), so each readiness wakes one thread.
struct Dispatcher {
    epfd: RawFd,
    listen_fd: RawFd,
    idle: Mutex<HashMap<RawFd, Conn>>,
}

impl Dispatcher {
    fn new(listen_fd: RawFd) -> std::io::Result<Dispatcher> {
        // SAFETY: epoll_create1 returns a new descriptor we own.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let d = Dispatcher { epfd, listen_fd, idle: Mutex::new(HashMap::new()) };
        d.arm(listen_fd, LISTEN, libc::EPOLL_CTL_ADD)?;
        Ok(d)
    }

    fn arm(&self, fd: RawFd, token: u64, op: libc::c_int) -> std::io::Result<()> {
        let mut ev = libc::epoll_event { events: (libc::EPOLLIN | libc::EPOLLONESHOT) as u32, u64: token };
        // SAFETY: epoll_ctl on our epoll descriptor with a valid event struct.
        if unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits for a new connection or a request on an idle one. `None` once draining.
    fn next(&self, st: &State) -> Option<Conn> {
        loop {
            if st.draining.load(Ordering::SeqCst) {
                self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                return None;
            }
            let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
            // SAFETY: waits for at most one event into our array.
            let n = unsafe { libc::epoll_wait(self.epfd, ev.as_mut_ptr(), 1, 200) };
            if n <= 0 {
                continue;
            }
            let token = ev[0].u64;
            if token == LISTEN {
                // SAFETY: accept4 on our listening socket; the new descriptor is owned below.
                let fd = unsafe { libc::accept4(self.listen_fd, std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC) };
                if fd < 0 && matches!(std::io::Error::last_os_error().raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE)) {
                    tracing::warn!(target: "wsgi", "daemon process {} is out of file descriptors; waiting before accepting more connections", std::process::id());
                    std::thread::sleep(Duration::from_millis(100));
                }
                let _ = self.arm(self.listen_fd, LISTEN, libc::EPOLL_CTL_MOD);
                if fd >= 0 {
                    // SAFETY: fd is a fresh connected socket we own.
                    let stream = unsafe { UnixStream::from_raw_fd(fd) };
                    return Some(Conn { stream, reader: FrameReader::default(), greeted: false, registered: false });
                }
            } else if let Some(c) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).remove(&(token as RawFd)) {
                return Some(c);
            }
        }
    }

    fn give_back(&self, mut c: Conn) {
        let fd = c.stream.as_raw_fd();
        let op = if c.registered { libc::EPOLL_CTL_MOD } else { libc::EPOLL_CTL_ADD };
        c.registered = true;
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).insert(fd, c);
        if self.arm(fd, fd as u64, op).is_err() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).remove(&fd);
        }
    }
}

/// The uid of the process at the other end of `s`.
fn peer_uid(s: &UnixStream) -> Option<(u32, i32)> {
    // SAFETY: ucred is plain old data; all-zero is a valid value.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most len bytes into cred.
    let rc = unsafe { libc::getsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &mut len) };
    (rc == 0).then_some((cred.uid, cred.pid))
}

/// Checks the peer and the handshake. Refusals are logged and the connection dropped.
fn greet(rt: &GroupRuntime, c: &mut Conn) -> bool {
    let name = &rt.spec.name;
    match peer_uid(&c.stream) {
        Some((uid, _)) if uid == rt.apache_uid || uid == 0 => {}
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
        c.greeted = protocol::write_frame(&mut c.stream, &Frame::HelloOk).is_ok();
    } else {
        let _ = protocol::write_frame(&mut c.stream, &Frame::Refused("handshake failed".into()));
    }
    ok && c.greeted
}

/// Serves one request from `c`. Returns whether the connection may be reused.
fn serve_one(rt: &GroupRuntime, st: &State, c: &mut Conn) -> bool {
    let req = match c.reader.next(&c.stream).map(|o| o.map(|(f, _)| f)) {
        Ok(Some(Frame::Request(r))) => r,
        Ok(None) => return false,
        Ok(Some(other)) => {
            tracing::warn!(target: "wsgi", "{}: protocol error from an Apache child: expected a request, got {other:?}", crate::codes::PEER_REFUSED);
            return false;
        }
        Err(_) => return false,
    };
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

    let keep = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_request(rt, c, &req))) {
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

fn run_request(rt: &GroupRuntime, c: &mut Conn, req: &protocol::Request) -> bool {
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
        if !c.greeted && !greet(&rt, &mut c) {
            continue;
        }
        if serve_one(&rt, &st, &mut c) && !st.draining.load(Ordering::SeqCst) {
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
pub fn worker_main(rt: Arc<GroupRuntime>, notify_fd: RawFd) -> ! {
    // SAFETY: prctl with PR_SET_PDEATHSIG only sets a flag on this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    install_signals();
    let spec = &rt.spec;
    tracing::info!(target: "wsgi", "Starting process '{}' with pid={}, uid={}, gid={} and threads={}.", spec.name, std::process::id(), unsafe { libc::getuid() }, unsafe { libc::getgid() }, spec.threads);
    let opts = interp::InitOptions {
        python_home: spec.python_home.clone(),
        python_path: spec.python_path.clone(),
        process: Some(ProcessInfo {
            multithread: spec.threads > 1,
            multiprocess: spec.multiprocess,
            process_group: spec.name.clone(),
            apache_version: rt.apache_version,
            maximum_processes: spec.processes.max(1),
            threads_per_process: spec.threads.max(1),
        }),
    };
    // lang= / locale=: the environment Python reads its encodings from at start-up.
    // SAFETY: single-threaded until the request threads start below.
    unsafe {
        if let Some(lang) = &spec.lang {
            std::env::set_var("LANG", lang);
        }
        if let Some(locale) = &spec.locale {
            std::env::set_var("LC_ALL", locale);
            if let Ok(c) = std::ffi::CString::new(locale.as_str()) {
                libc::setlocale(libc::LC_ALL, c.as_ptr());
            }
        }
    }
    tracing::info!(target: "wsgi", "Initializing Python {} in daemon process '{}' (pid {}).", interp::python_version(), spec.name, std::process::id());
    if let Err(e) = interp::initialize(&opts) {
        let hint = if spec.python_home.is_some() { "; check that python-home names a Python 3.11 virtualenv or installation readable by the daemon's user" } else { "" };
        tracing::error!(target: "wsgi", "{}: daemon process '{}' cannot initialise Python: {e}{hint}", crate::codes::PYTHON_INIT_FAILED, spec.name);
        // SAFETY: exiting without running Apache's or Python's exit handlers.
        unsafe { libc::_exit(3) };
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
        notify_fd,
    });
    let d = match Dispatcher::new(rt.listen_fd) {
        Ok(d) => Arc::new(d),
        Err(e) => {
            tracing::error!(target: "wsgi", "daemon process '{}' cannot set up its dispatcher: {e}", spec.name);
            // SAFETY: leaving without Apache's or Python's exit handlers.
            unsafe { libc::_exit(3) }
        }
    };
    // Request threads (and the threads they start) leave SIGTERM/SIGINT to the main thread.
    // SAFETY: pthread_sigmask on this thread with a set we build; restored after spawning.
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, &mut old);
    }
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
    // SAFETY: restores this thread's mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
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
            if let Some(reason) = control::check(&limits, &st.activity(), Instant::now()) {
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
                // A deadlocked interpreter cannot finish requests: leave now.
                // SAFETY: leaving without Apache's or Python's exit handlers.
                unsafe { libc::_exit(4) };
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
        interp::run_exit_hooks();
    }
    // SAFETY: leave at once: request threads may be blocked in Python or in the dispatcher.
    unsafe { libc::_exit(0) }
}

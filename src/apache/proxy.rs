//! Daemon mode in an Apache child: hands a request to a daemon process group and relays the
//! response.
//!
//! Connections to each group are kept and reused, but a pooled connection is tied to one daemon
//! process: it is reused only after one of that process's free threads was reserved on the
//! group's capacity board (`crate::daemon::board`). Otherwise the request goes on a new
//! connection, which the first free thread of any process of the group accepts. So a request
//! never waits behind a busy process while another has a free thread; when every thread is busy
//! it waits in the group's listening socket, up to `queue-timeout`.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::codes;
use crate::daemon::GroupRuntime;
use crate::daemon::board::Reservation;
use crate::protocol::{self, BodyErrorKind, EndKind, Frame};
use crate::protocol::fdpass::FrameReader;
use crate::sys;
use crate::wsgi::{IoError, RequestIo, ResponseHead, Severity};

/// A connection to a group with its read buffer.
struct Conn {
    s: UnixStream,
    r: FrameReader,
    idle_since: Instant,
    /// The daemon process at the other end.
    pid: i32,
    /// The read timeout set on `s` (not set again while it stays the same).
    read_timeout: Option<Duration>,
}

/// Pooled connections idle longer than this are closed rather than reused.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// Idle connections per group socket path.
static IDLE: Mutex<Option<HashMap<String, Vec<Conn>>>> = Mutex::new(None);

/// A pooled connection to a process of the group with a thread reserved for this request.
fn take_idle(rt: &GroupRuntime) -> Option<Conn> {
    let mut g = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    let v = g.as_mut()?.get_mut(&rt.socket_path)?;
    // Old ones are dropped (closed), and those to processes that are gone.
    v.retain(|c| c.idle_since.elapsed() < IDLE_LIMIT);
    // The most recently used connection is at the end.
    for i in (0..v.len()).rev() {
        match rt.board.reserve(v[i].pid) {
            Reservation::Reserved => return Some(v.remove(i)),
            Reservation::Busy => {}
            Reservation::Unknown => {
                v.remove(i);
            }
        }
    }
    None
}

fn put_idle(path: &str, mut s: Conn) {
    if s.pid <= 0 {
        return;
    }
    if s.r.has_stray_fds() {
        return;
    }
    s.idle_since = Instant::now();
    let mut g = IDLE.lock().unwrap_or_else(|e| e.into_inner());
    let v = g.get_or_insert_with(HashMap::new).entry(path.to_string()).or_default();
    if v.len() < 64 {
        v.push(s);
    }
}

/// Why no connection to the group could be had.
enum ConnectError {
    Failed(String),
    /// Connected, but no thread of the group greeted it before queue-timeout.
    Queue,
}

/// Connects and greets; retries while the group is starting or its backlog is full.
///
/// `connect-timeout` bounds getting a connection, and waiting for a greeting while no process
/// of the group is serving (a group that cannot start). A daemon thread greets a new connection
/// only when it is free, so otherwise the wait for the greeting is queueing: it ends at
/// `queue_deadline` (queue-timeout) when set, else at `greet_deadline` (socket-timeout).
fn connect(rt: &GroupRuntime, deadline: Instant, queue_deadline: Option<Instant>, greet_deadline: Instant) -> Result<(UnixStream, i32), ConnectError> {
    let mut last;
    loop {
        match sys::socket::connect_unix_timeout(&rt.socket_path, deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100))) {
            Ok(mut s) => {
                let hello = Frame::Hello { version: protocol::VERSION, secret: rt.secret.to_vec() };
                protocol::write_frame(&mut s, &hello).map_err(|e| ConnectError::Failed(e.to_string()))?;
                let wait_until = queue_deadline.unwrap_or(greet_deadline);
                let reply = loop {
                    // In slices, to notice a group with no process serving.
                    let slice = wait_until.saturating_duration_since(Instant::now()).clamp(Duration::from_millis(1), Duration::from_millis(500));
                    let _ = s.set_read_timeout(Some(slice));
                    match protocol::read_frame(&mut s) {
                        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                            let now = Instant::now();
                            if queue_deadline.is_some_and(|q| now >= q) {
                                return Err(ConnectError::Queue);
                            }
                            if now >= wait_until {
                                return Err(ConnectError::Failed("no thread of the group took the connection within socket-timeout".into()));
                            }
                            if now >= deadline && rt.board.snapshot().is_empty() {
                                break Err(e);
                            }
                        }
                        other => break other,
                    }
                };
                match reply {
                    Ok(Some(Frame::HelloOk { pid })) => {
                        let _ = s.set_read_timeout(None);
                        // Wake the reader only once more than the 5-byte Started record is there
                        // (the end of stream and timeouts still wake it): one wake-up per request.
                        let _ = sys::socket::set_recv_lowat(s.as_fd(), 6);
                        return Ok((s, i32::try_from(pid).unwrap_or(0)));
                    }
                    Ok(Some(Frame::Refused(m))) => return Err(ConnectError::Failed(format!("the daemon refused the connection: {m}"))),
                    Ok(other) => last = format!("unexpected handshake reply {other:?}"),
                    Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                        last = "no daemon process of the group is serving (see the error log for why it does not start)".into();
                    }
                    Err(e) => last = e.to_string(),
                }
            }
            Err(e) => last = e.to_string(),
        }
        if Instant::now() >= deadline {
            return Err(ConnectError::Failed(last));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How relaying one attempt ended.
enum Relay {
    /// A complete exchange; the connection may be reused.
    Done(EndKind, Conn),
    /// The daemon asked for the request to be sent again (it is restarting).
    Retry,
    /// The connection failed before the daemon said anything (a stale reused connection).
    Stale,
    /// The daemon failed after the head was relayed: the response was cut.
    Cut,
    /// The daemon failed before the head: nothing was sent to the client.
    Lost(String),
    /// The application's response head was refused (too large): nothing was sent.
    BadHead(String),
    ClientGone,
    /// The application failed mid-response; the daemon said so and the response was cut.
    Aborted,
    /// No answer within socket-timeout; whether the head was relayed, and the process.
    Timeout(bool, i32),
}

/// Relays one request on `c`. A thread of the daemon is already dedicated to it (it greeted
/// the new connection, or the Apache child reserved it for the pooled one), so queueing is
/// over: only socket-timeout applies.
/// `header_limit`: header-buffer-size=, the largest response head (status line and header
/// fields, as on the wire) accepted from the daemon.
fn relay(mut c: Conn, io: &mut dyn RequestIo, socket_timeout: Duration, header_limit: Option<usize>) -> Relay {
    if c.read_timeout != Some(socket_timeout) && c.s.set_read_timeout(Some(socket_timeout)).is_ok() {
        c.read_timeout = Some(socket_timeout);
    }
    // Until the daemon says it started the request, a failure means it never ran: send again.
    let mut any = false;
    let mut head_sent = false;
    loop {
        let (frame, fd) = match c.r.next(&c.s) {
            Ok(Some(x)) => x,
            Ok(None) if !any => return Relay::Stale,
            Ok(None) => return if head_sent { io.abort(); Relay::Cut } else { Relay::Lost("the daemon process closed the connection before answering".into()) },
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => return Relay::Timeout(head_sent, c.pid),
            Err(e) if !any && matches!(e.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe) => return Relay::Stale,
            Err(e) => return if head_sent { io.abort(); Relay::Cut } else { Relay::Lost(format!("connection to the daemon process failed: {e}")) },
        };
        match frame {
            Frame::Started => {
                any = true;
                continue;
            }
            Frame::Retry(_) if !any => return Relay::Retry,
            _ if !any => return Relay::Lost("protocol error: the daemon answered without starting the request".into()),
            _ => {}
        }
        match frame {
            Frame::ReadBody { max } => {
                let mut buf = vec![0u8; max.min(256 * 1024) as usize];
                let reply = match io.read_body(&mut buf) {
                    Ok(0) => Frame::BodyEnd,
                    Ok(n) => {
                        buf.truncate(n);
                        Frame::Body(buf)
                    }
                    Err(e) => {
                        let kind = match &e {
                            IoError::ClientGone(_) => BodyErrorKind::ClientGone,
                            IoError::TimedOut(_) => BodyErrorKind::TimedOut,
                            IoError::TooLarge(_) => BodyErrorKind::TooLarge,
                            IoError::Other(_) => BodyErrorKind::Other,
                        };
                        let message = match e {
                            IoError::ClientGone(m) | IoError::TimedOut(m) | IoError::TooLarge(m) | IoError::Other(m) => m,
                        };
                        Frame::BodyError { kind, message }
                    }
                };
                if protocol::write_frame(&mut c.s, &reply).is_err() {
                    return if head_sent { Relay::Cut } else { Relay::Lost("the daemon process went away while reading the request body".into()) };
                }
            }
            Frame::Head { code, status, headers } => {
                // The daemon runs application code, maybe as another user: check what it sends.
                let valid = crate::wsgi::validate::status(&status).ok() == Some(code)
                    && headers.iter().all(|(k, v)| crate::wsgi::validate::header_name(k).is_ok() && crate::wsgi::validate::header_value(k, v).is_ok());
                if !valid {
                    return Relay::Lost(format!("the daemon sent an invalid response head ({status:?})"));
                }
                let size = status.len() + 13 + headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>();
                if let Some(limit) = header_limit.filter(|l| size > *l) {
                    return Relay::BadHead(format!(
                        "the application's response headers take {size} bytes, more than header-buffer-size={limit}; raise header-buffer-size or send fewer headers"
                    ));
                }
                if io.send_head(&ResponseHead { code, status, headers }).is_err() {
                    return Relay::ClientGone;
                }
                head_sent = true;
            }
            Frame::Data { flush, data } => match io.write_body(&data, flush) {
                Ok(()) => {}
                Err(IoError::ClientGone(_)) => return Relay::ClientGone,
                Err(_) => {
                    io.abort();
                    return Relay::Cut;
                }
            },
            Frame::File { offset, len } => {
                let Some(fd) = fd else { return Relay::Lost("a file record arrived without its descriptor".into()) };
                let st = sys::fd::fstat(fd.as_fd()).ok().filter(|st| st.is_regular_file());
                if st.is_none_or(|st| offset.checked_add(len).is_none_or(|end| end > st.size)) {
                    return if head_sent { io.abort(); Relay::Cut } else { Relay::Lost("the daemon passed a descriptor that is not a regular file of the announced size".into()) };
                }
                match io.send_file(fd.as_raw_fd(), offset, len) {
                    Ok(true) => {}
                    Err(IoError::ClientGone(_)) => return Relay::ClientGone,
                    Ok(false) | Err(_) => {
                        io.abort();
                        return Relay::Cut;
                    }
                }
            }
            Frame::End(kind) => {
                if kind == EndKind::Complete && io.finish().is_err() {
                    return Relay::ClientGone;
                }
                return Relay::Done(kind, c);
            }
            Frame::Abort(_) => {
                io.abort();
                return Relay::Aborted;
            }
            Frame::Refused(m) => return Relay::Lost(format!("the daemon refused the request: {m}")),
            other => return Relay::Lost(format!("protocol error: unexpected {other:?}")),
        }
    }
}

fn queue_timeout_message(rt: &GroupRuntime, script: &str) -> String {
    let q = rt.spec.queue_timeout.unwrap_or_default().as_secs();
    format!(
        "{}: the request for '{script}' waited {q}s for a free thread of daemon process group '{}' (queue-timeout) while every thread was busy; returning 504",
        codes::QUEUE_TIMEOUT,
        rt.spec.name
    )
}

/// Hands the request to the group. Returns the HTTP status for the handler (OK = 0).
pub fn forward(rt: &GroupRuntime, req: &protocol::RequestRef<'_>, io: &mut dyn RequestIo, apache_timeout: Duration) -> i32 {
    let name = &rt.spec.name;
    let encoded = protocol::encode_request(req);
    let wait = rt.spec.queue_timeout.unwrap_or(rt.spec.connect_timeout).max(rt.spec.connect_timeout);
    let deadline = Instant::now() + wait.max(rt.spec.graceful_timeout + Duration::from_secs(5));
    let socket_timeout = rt.spec.socket_timeout.unwrap_or(apache_timeout);
    let queue_deadline = rt.spec.queue_timeout.map(|q| Instant::now() + q);
    loop {
        let (mut s, pooled) = match take_idle(rt) {
            Some(s) => (s, true),
            None => match connect(rt, Instant::now() + rt.spec.connect_timeout, queue_deadline, Instant::now() + socket_timeout) {
                Ok((s, pid)) => (Conn { s, r: FrameReader::default(), idle_since: Instant::now(), pid, read_timeout: None }, false),
                Err(ConnectError::Queue) => {
                    io.log(Severity::Error, &queue_timeout_message(rt, req.script));
                    return super::ffi::HTTP_GATEWAY_TIME_OUT;
                }
                Err(ConnectError::Failed(e)) => {
                    io.log(Severity::Error, &format!("{}: cannot connect to daemon process group '{name}' at '{}': {e}; returning 503", codes::DAEMON_UNAVAILABLE, rt.socket_path));
                    return super::ffi::HTTP_SERVICE_UNAVAILABLE;
                }
            },
        };
        // A daemon that has not received the whole request cannot have started it: a failed
        // write (a pooled connection gone stale, or a process that greeted us and then began to
        // drain) is always safe to send again.
        let outcome = if std::io::Write::write_all(&mut s.s, &encoded).is_err() {
            if pooled {
                // The thread reserved for it will not see this request.
                rt.board.give_pid(s.pid);
            }
            Relay::Stale
        } else {
            relay(s, io, socket_timeout, rt.spec.header_buffer_size.map(|n| n as usize))
        };
        match outcome {
            Relay::Done(kind, s) => {
                if kind != EndKind::ClientGone {
                    put_idle(&rt.socket_path, s);
                }
                return match kind {
                    EndKind::Failed => super::ffi::HTTP_INTERNAL_SERVER_ERROR,
                    EndKind::TimedOut => super::ffi::HTTP_GATEWAY_TIME_OUT,
                    EndKind::BodyTimedOut => super::ffi::HTTP_REQUEST_TIME_OUT,
                    EndKind::Complete | EndKind::ClientGone => super::ffi::OK,
                };
            }
            Relay::Retry | Relay::Stale if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(if pooled { 0 } else { 5 }));
                continue;
            }
            Relay::Retry | Relay::Stale => {
                io.log(Severity::Error, &format!("{}: daemon process group '{name}' did not take the request within {}s (it kept restarting); returning 503", codes::DAEMON_UNAVAILABLE, wait.as_secs()));
                return super::ffi::HTTP_SERVICE_UNAVAILABLE;
            }
            Relay::Lost(why) => {
                io.log(Severity::Error, &format!("{}: daemon process of group '{name}' failed while handling the request for '{}': {why}; returning 502", codes::DAEMON_DIED, req.script));
                return super::ffi::HTTP_BAD_GATEWAY;
            }
            Relay::BadHead(why) => {
                io.log(Severity::Error, &format!("{}: the response of '{}' was refused: {why}; returning 500", codes::RESPONSE_REFUSED, req.script));
                return super::ffi::HTTP_INTERNAL_SERVER_ERROR;
            }
            Relay::Cut => {
                io.log(Severity::Error, &format!("{}: daemon process of group '{name}' failed after the response head was sent for '{}'; the response was cut short", codes::DAEMON_DIED, req.script));
                return super::ffi::OK;
            }
            Relay::ClientGone | Relay::Aborted => return super::ffi::OK,
            Relay::Timeout(head_sent, pid) => {
                io.log(Severity::Error, &format!("{}: no answer for {}s from daemon process {pid} of group '{name}' (socket-timeout) for '{}'", codes::DAEMON_DIED, socket_timeout.as_secs(), req.script));
                if head_sent {
                    io.abort();
                    return super::ffi::OK;
                }
                return super::ffi::HTTP_GATEWAY_TIME_OUT;
            }
        }
    }
}

//! Stable codes for every warning-or-worse log line this module writes, so users can search for
//! them. Codes are never reused; add new ones at the end of their block.

/// The WSGI script file named by the mount does not exist (404).
pub const SCRIPT_MISSING: &str = "WR0101";
/// The script raised while it was executed (500).
pub const SCRIPT_LOAD_FAILED: &str = "WR0102";
/// The script has no callable of the configured name (500).
pub const NO_CALLABLE: &str = "WR0103";
/// The application raised before the response head was sent (500).
pub const APP_EXCEPTION: &str = "WR0104";
/// The application raised after the head was sent: the response was cut short.
pub const APP_EXCEPTION_AFTER_HEAD: &str = "WR0105";
/// start_response was given a bad status line or header (500).
pub const BAD_RESPONSE_HEAD: &str = "WR0106";
/// The application yielded something other than bytes.
pub const BAD_BODY_ITEM: &str = "WR0107";
/// The application returned fewer bytes than its Content-Length.
pub const SHORT_BODY: &str = "WR0108";
/// The client went away while the response was being sent.
pub const CLIENT_GONE: &str = "WR0109";
/// The application returned without calling start_response (500).
pub const NO_START_RESPONSE: &str = "WR0110";
/// close() on the returned iterable raised.
pub const CLOSE_FAILED: &str = "WR0111";
/// Python could not be initialised in a process.
pub const PYTHON_INIT_FAILED: &str = "WR0112";
/// A panic inside this module was caught at the boundary with Apache.
pub const INTERNAL_PANIC: &str = "WR0113";
/// A request reached a mount whose process group is not defined.
pub const UNKNOWN_PROCESS_GROUP: &str = "WR0114";
/// A chunked request body arrived without WSGIChunkedRequest On (411).
pub const CHUNKED_REFUSED: &str = "WR0115";
/// The application returned more bytes than its Content-Length; the excess was dropped.
pub const EXCESS_BODY: &str = "WR0116";
/// Something the configuration names that this build does not implement yet.
pub const NOT_IMPLEMENTED: &str = "WR0117";
/// A daemon process group refused a peer (wrong user, secret or protocol version).
pub const PEER_REFUSED: &str = "WR0118";
/// A request ran past request-timeout; the stacks follow and the process restarts.
pub const REQUEST_TIMEOUT: &str = "WR0119";
/// The daemon process died or closed the connection while handling a request (502).
pub const DAEMON_DIED: &str = "WR0120";
/// No daemon process of the group could be reached in time (503).
pub const DAEMON_UNAVAILABLE: &str = "WR0121";
/// A daemon process exited unexpectedly and is being replaced.
pub const DAEMON_EXITED: &str = "WR0122";
/// A Python interpreter for an application group could not be created or set up.
pub const INTERPRETER_FAILED: &str = "WR0123";
/// An extension module failed or hung in a sub-interpreter; the fix is WSGIApplicationGroup %{GLOBAL}.
pub const SUBINTERPRETER_UNSUPPORTED: &str = "WR0124";
/// A daemon process's GIL could not be taken for deadlock-timeout; the process restarts.
pub const DEADLOCK_TIMEOUT: &str = "WR0125";
/// Every thread of a daemon process group stayed busy until queue-timeout (504).
pub const QUEUE_TIMEOUT: &str = "WR0126";
/// WSGIScriptAlias maps a request to a directory, not a script file (403): name a script file.
pub const DIRECTORY_TARGET: &str = "WR0127";
/// A handler-mapped script in a directory without `Options ExecCGI` (403): add `Options +ExecCGI`.
pub const EXEC_CGI_OFF: &str = "WR0128";
/// A WSGIImportScript file cannot be read at process start: fix the path or its permissions.
pub const IMPORT_SCRIPT_UNREADABLE: &str = "WR0129";
/// The client stopped sending the request body (Apache's Timeout) and the application failed on it (408).
pub const BODY_TIMEOUT: &str = "WR0130";
/// An auth, access, dispatch or handler script raised, lacks the function the phase needs, or
/// returned a value of the wrong type: the request gets 500.
pub const HOOK_SCRIPT_FAILED: &str = "WR0131";
/// WSGIAccessScript's allow_access() refused the client (403).
pub const CLIENT_DENIED: &str = "WR0132";
/// An embedded-mode request while WSGIRestrictEmbedded is On (500): route it to a daemon group.
pub const EMBEDDED_RESTRICTED: &str = "WR0133";
/// WSGIRestrictSignal On: an application's signal.signal() call was ignored.
pub const SIGNAL_IGNORED: &str = "WR0134";
/// WSGIRestrictProcess does not allow the process group a request chose (403).
pub const PROCESS_RESTRICTED: &str = "WR0135";
/// script-user= / script-group=: the script's owner or group is not the one the daemon group requires (403).
pub const SCRIPT_OWNER_REFUSED: &str = "WR0136";
/// A daemon request ran past request-timeout and mod_wsgi.RequestTimeout was injected into its
/// thread (interrupt-timeout); the process restarts only if the thread does not return in time.
pub const REQUEST_INTERRUPTED: &str = "WR0137";
/// A daemon process reached memory-limit=, virtual-memory-limit= or cpu-time-limit= and is replaced.
pub const PROCESS_LIMIT: &str = "WR0138";
/// A daemon-mode response head larger than header-buffer-size= (500).
pub const RESPONSE_REFUSED: &str = "WR0139";
/// A callback subscribed with mod_wsgi.subscribe_events() or subscribe_shutdown() raised; the
/// request (or the shutdown) went on.
pub const EVENT_CALLBACK_FAILED: &str = "WR0140";

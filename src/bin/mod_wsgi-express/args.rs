//! The command line: subcommands and the options of start-server / setup-server, parsed by
//! hand (`--name value` or `--name=value`; `--url-alias` takes two values).

use std::path::PathBuf;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppType {
    /// A WSGI script file, loaded by mod_wsgi from its path.
    Script,
    /// A Python module `NAME[:CALLABLE]`, imported from the working directory / python path.
    Module,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }
}

/// Options of start-server and setup-server, as given (checked and resolved later).
#[derive(Clone, Debug)]
pub struct Options {
    pub entry: Option<String>,
    pub app_type: AppType,
    pub callable: Option<String>,
    pub mount_point: String,
    pub host: String,
    pub port: u16,
    pub processes: u32,
    pub threads: u32,
    pub url_aliases: Vec<(String, PathBuf)>,
    pub document_root: Option<PathBuf>,
    pub reload_on_changes: bool,
    /// mod_wsgi.server_metrics() reads Apache's scoreboard (WSGIServerMetrics / server-metrics=On).
    pub server_metrics: bool,
    /// Run the application in Apache's children (no daemon process group).
    pub embedded_mode: bool,
    pub python_paths: Vec<PathBuf>,
    pub python_home: Option<PathBuf>,
    pub working_directory: Option<PathBuf>,
    pub log_level: String,
    pub access_log: bool,
    pub log_directory: Option<PathBuf>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub server_root: Option<PathBuf>,
    pub setup_only: bool,
    pub application_group: String,
    pub maximum_requests: u64,
    pub request_timeout: u64,
    /// 0: no RequestTimeout injection (the process restarts at request-timeout).
    pub interrupt_timeout: u64,
    pub mpm: Mpm,
    /// Options passed to the daemon process group as they are (`name=value`), in order.
    pub daemon_options: Vec<(String, String)>,
    /// Lines of the main server's configuration the options ask for, in order.
    pub server_lines: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            entry: None,
            app_type: AppType::Script,
            callable: None,
            mount_point: "/".into(),
            host: "127.0.0.1".into(),
            port: 8000,
            processes: 1,
            threads: 5,
            url_aliases: Vec::new(),
            document_root: None,
            reload_on_changes: false,
            server_metrics: false,
            embedded_mode: false,
            python_paths: Vec::new(),
            python_home: None,
            working_directory: None,
            log_level: "warn".into(),
            access_log: false,
            log_directory: None,
            user: None,
            group: None,
            server_root: None,
            setup_only: false,
            application_group: "%{GLOBAL}".into(),
            maximum_requests: 0,
            request_timeout: 60,
            interrupt_timeout: 0,
            mpm: Mpm::Event,
            daemon_options: Vec::new(),
            server_lines: Vec::new(),
        }
    }
}

pub enum Command {
    StartServer(Options),
    SetupServer(Options),
    ModuleConfig,
    ModuleLocation,
    Help(Option<String>),
    Version,
}

/// One option: its name, the placeholders of its values, and its help text.
struct Opt {
    name: &'static str,
    values: &'static [&'static str],
    help: &'static str,
}

const OPTIONS: &[Opt] = &[
    Opt { name: "application-type", values: &["TYPE"], help: "'script' (default): the argument is a WSGI script file; 'module': it is a Python module NAME[:CALLABLE] importable from the working directory or --python-path" },
    Opt { name: "entry-point", values: &["SCRIPT|MODULE"], help: "the script or module, as an option instead of the argument" },
    Opt { name: "callable-object", values: &["NAME"], help: "the name of the WSGI callable (default: application)" },
    Opt { name: "mount-point", values: &["URL"], help: "the URL the application answers under (default: /)" },
    Opt { name: "host", values: &["IP"], help: "the address to listen on (default: 127.0.0.1; '*' or 0.0.0.0 listens on every interface)" },
    Opt { name: "port", values: &["NUMBER"], help: "the port to listen on (default: 8000)" },
    Opt { name: "embedded-mode", values: &[], help: "run the application in Apache's own child processes instead of a daemon process group (the daemon-only --reload-on-changes and --request-timeout do not apply)" },
    Opt { name: "processes", values: &["NUMBER"], help: "daemon processes running the application (default: 1); with --embedded-mode, Apache child processes" },
    Opt { name: "threads", values: &["NUMBER"], help: "request threads in each daemon process (default: 5); with --embedded-mode, in each Apache child (prefork: processes x threads single-threaded children)" },
    Opt { name: "url-alias", values: &["URL", "PATH"], help: "serve the static file or directory PATH at URL (repeatable)" },
    Opt { name: "document-root", values: &["DIR"], help: "serve files found under DIR before handing a URL to the application" },
    Opt { name: "server-metrics", values: &[], help: "let mod_wsgi.server_metrics() return Apache's scoreboard (WSGIServerMetrics On, and server-metrics=On on the daemon process group)" },
    Opt { name: "reload-on-changes", values: &[], help: "restart the daemon processes when a Python file the application imported changes (for development)" },
    Opt { name: "python-path", values: &["DIR"], help: "add DIR to the application's sys.path (repeatable)" },
    Opt { name: "python-home", values: &["DIR"], help: "the virtualenv the application runs in (default: $VIRTUAL_ENV when one is active)" },
    Opt { name: "working-directory", values: &["DIR"], help: "the daemon processes' (with --embedded-mode, Apache's) working directory, also put first on sys.path (default: the current directory)" },
    Opt { name: "log-level", values: &["LEVEL"], help: "Apache's LogLevel: emerg, alert, crit, error, warn (default), notice, info, debug" },
    Opt { name: "access-log", values: &[], help: "log every request (to the terminal, or to --log-directory)" },
    Opt { name: "log-directory", values: &["DIR"], help: "write error_log (and access_log) in DIR instead of to the terminal" },
    Opt { name: "user", values: &["NAME"], help: "when run as root: the user Apache's children and the daemon processes run as (default: www-data)" },
    Opt { name: "group", values: &["NAME"], help: "when run as root: their group (default: the user's primary group)" },
    Opt { name: "server-root", values: &["DIR"], help: "where httpd.conf, apachectl and the run files go (default: /tmp/mod_wsgi-express-rs.PORT.UID)" },
    Opt { name: "setup-only", values: &[], help: "write the server root and stop there (like setup-server)" },
    Opt { name: "application-group", values: &["NAME"], help: "the Python interpreter the application runs in (default: %{GLOBAL}, the main interpreter)" },
    Opt { name: "maximum-requests", values: &["NUMBER"], help: "replace a daemon process after this many requests (default: 0, never); with --embedded-mode, an Apache child after this many connections" },
    Opt { name: "interrupt-timeout", values: &["SECONDS"], help: "first raise mod_wsgi.RequestTimeout in a request past --request-timeout, restarting the process only if it has not returned this much later (default: 0, off)" },
    Opt { name: "request-timeout", values: &["SECONDS"], help: "restart a daemon process whose requests run longer than this (default: 60; 0 disables; not applied with --embedded-mode)" },
    Opt { name: "mpm", values: &["NAME"], help: "Apache's MPM: event (default), worker or prefork" },
    Opt { name: "graceful-timeout", values: &["SECONDS"], help: "daemon process group option graceful-timeout= (daemon mode only)" },
    Opt { name: "shutdown-timeout", values: &["SECONDS"], help: "daemon process group option shutdown-timeout= (daemon mode only)" },
    Opt { name: "eviction-timeout", values: &["SECONDS"], help: "daemon process group option eviction-timeout= (daemon mode only)" },
    Opt { name: "inactivity-timeout", values: &["SECONDS"], help: "daemon process group option inactivity-timeout= (daemon mode only)" },
    Opt { name: "restart-interval", values: &["SECONDS"], help: "daemon process group option restart-interval= (daemon mode only)" },
    Opt { name: "deadlock-timeout", values: &["SECONDS"], help: "daemon process group option deadlock-timeout= (daemon mode only)" },
    Opt { name: "startup-timeout", values: &["SECONDS"], help: "daemon process group option startup-timeout= (daemon mode only)" },
    Opt { name: "connect-timeout", values: &["SECONDS"], help: "daemon process group option connect-timeout= (daemon mode only)" },
    Opt { name: "socket-timeout", values: &["SECONDS"], help: "daemon process group option socket-timeout= (daemon mode only)" },
    Opt { name: "queue-timeout", values: &["SECONDS"], help: "daemon process group option queue-timeout= (daemon mode only)" },
    Opt { name: "response-socket-timeout", values: &["SECONDS"], help: "daemon process group option response-socket-timeout= (daemon mode only)" },
    Opt { name: "cpu-time-limit", values: &["SECONDS"], help: "daemon process group option cpu-time-limit= (daemon mode only)" },
    Opt { name: "header-buffer-size", values: &["BYTES"], help: "daemon process group option header-buffer-size= (daemon mode only)" },
    Opt { name: "response-buffer-size", values: &["BYTES"], help: "daemon process group option response-buffer-size= (daemon mode only)" },
    Opt { name: "send-buffer-size", values: &["BYTES"], help: "daemon process group option send-buffer-size= (daemon mode only)" },
    Opt { name: "receive-buffer-size", values: &["BYTES"], help: "daemon process group option receive-buffer-size= (daemon mode only)" },
    Opt { name: "python-eggs", values: &["DIR"], help: "daemon process group option python-eggs= (daemon mode only)" },
    Opt { name: "server-name", values: &["NAME"], help: "Apache's ServerName" },
    Opt { name: "keep-alive-timeout", values: &["SECONDS"], help: "Apache's KeepAliveTimeout (default: Apache's, 5)" },
    Opt { name: "limit-request-body", values: &["BYTES"], help: "Apache's LimitRequestBody: the largest request body accepted (413 above it)" },
    Opt { name: "setenv", values: &["NAME", "VALUE"], help: "SetEnv NAME VALUE: a variable of every request's environ (repeatable)" },
    Opt { name: "passenv", values: &["NAME"], help: "PassEnv NAME: pass the server's environment variable NAME to every request's environ (repeatable)" },
    Opt { name: "enable-sendfile", values: &[], help: "send wsgi.file_wrapper files with sendfile() (EnableSendfile and WSGIEnableSendfile On)" },
    Opt { name: "map-head-to-get", values: &["On|Off|Auto"], help: "WSGIMapHEADToGET" },
    Opt { name: "chunked-request", values: &[], help: "accept chunked request bodies (WSGIChunkedRequest On)" },
    Opt { name: "error-override", values: &[], help: "Apache's error documents replace the application's 4xx/5xx bodies (WSGIErrorOverride On)" },
];

/// Options that are `WSGIDaemonProcess` options of the same name taking a whole number.
const DAEMON_NUMBERS: &[&str] = &[
    "graceful-timeout", "shutdown-timeout", "eviction-timeout", "inactivity-timeout", "restart-interval",
    "deadlock-timeout", "startup-timeout", "connect-timeout", "socket-timeout", "queue-timeout",
    "response-socket-timeout", "cpu-time-limit", "header-buffer-size", "response-buffer-size",
    "send-buffer-size", "receive-buffer-size",
];

/// A value for the configuration file, in double quotes (refused if it cannot be written there).
fn conf_word(name: &str, v: &str) -> Result<String, String> {
    super::conf::check_writable_text(&format!("--{name}"), v)?;
    Ok(super::conf::q(v))
}

pub fn usage(prog: &str) -> String {
    format!(
        "Usage: {prog} COMMAND [ARGS]\n\n\
         Commands:\n  \
         start-server [APP.wsgi | --application-type module MODULE[:CALLABLE]] [OPTIONS]\n      \
         generate an Apache configuration for the application and run Apache in the foreground\n  \
         setup-server [same as start-server]\n      \
         only generate the server root (start it later with its apachectl)\n  \
         module-config\n      \
         print the LoadModule line (and WSGIPythonHome for an active virtualenv) for an existing Apache\n  \
         module-location\n      \
         print the path of the Apache module\n\n\
         Run '{prog} start-server --help' for the options.\n"
    )
}

pub fn server_usage(prog: &str, command: &str) -> String {
    let mut s = format!(
        "Usage: {prog} {command} [APP.wsgi | --application-type module MODULE[:CALLABLE]] [OPTIONS]\n\nOptions:\n"
    );
    for o in OPTIONS {
        let mut head = format!("  --{}", o.name);
        for v in o.values {
            head.push(' ');
            head.push_str(v);
        }
        s.push_str(&format!("{head}\n      {}\n", o.help));
    }
    s.push_str("  --help\n      show this help\n");
    s
}

pub fn parse(prog: &str, args: &[String]) -> Result<Command, String> {
    let Some(cmd) = args.first() else { return Ok(Command::Help(None)) };
    let rest = &args[1..];
    match cmd.as_str() {
        "start-server" | "setup-server" => {
            if rest.iter().any(|a| a == "--help" || a == "-h") {
                return Ok(Command::Help(Some(cmd.clone())));
            }
            let mut o = parse_server_options(prog, cmd, rest)?;
            if cmd == "setup-server" {
                o.setup_only = true;
                return Ok(Command::SetupServer(o));
            }
            Ok(if o.setup_only { Command::SetupServer(o) } else { Command::StartServer(o) })
        }
        "module-config" | "module-location" => {
            if let Some(extra) = rest.first() {
                if extra == "--help" || extra == "-h" {
                    return Ok(Command::Help(None));
                }
                return Err(format!("{cmd} takes no arguments, but got '{extra}'"));
            }
            Ok(if cmd == "module-config" { Command::ModuleConfig } else { Command::ModuleLocation })
        }
        "help" | "--help" | "-h" => Ok(Command::Help(rest.first().cloned())),
        "--version" | "version" => Ok(Command::Version),
        other if other.starts_with('-') => Err(format!(
            "'{other}' comes before a command; write e.g. 'start-server app.wsgi {other} ...'"
        )),
        other => Err(format!(
            "unknown command '{other}'; use start-server, setup-server, module-config or module-location"
        )),
    }
}

fn parse_server_options(prog: &str, command: &str, args: &[String]) -> Result<Options, String> {
    let mut o = Options::default();
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        i += 1;
        let Some(body) = arg.strip_prefix("--") else {
            if arg.starts_with('-') && arg.len() > 1 {
                return Err(format!("unknown option '{arg}' for {command}; see '{prog} {command} --help'"));
            }
            if let Some(prev) = &o.entry {
                return Err(format!(
                    "{command} takes one application, but got '{prev}' and '{arg}'; give one script or module"
                ));
            }
            o.entry = Some(arg.clone());
            continue;
        };
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let Some(opt) = OPTIONS.iter().find(|o| o.name == name) else {
            let close = OPTIONS.iter().find(|o| o.name.starts_with(name) || name.starts_with(o.name));
            let hint = close.map(|c| format!(" (did you mean --{}?)", c.name)).unwrap_or_default();
            return Err(format!("unknown option '--{name}' for {command}{hint}; see '{prog} {command} --help'"));
        };
        let mut values = Vec::new();
        if opt.values.is_empty() {
            if inline.is_some() {
                return Err(format!("--{name} is a flag and takes no value; write just --{name}"));
            }
        } else {
            let mut needed = opt.values.len();
            if let Some(v) = inline {
                values.push(v);
                needed -= 1;
            }
            for _ in 0..needed {
                match args.get(i) {
                    Some(v) if !(v.starts_with("--") && v.len() > 2) => {
                        values.push(v.clone());
                        i += 1;
                    }
                    _ => {
                        let example = example_of(name);
                        return Err(format!("--{name} needs {}; write e.g. --{name} {example}", opt.values.join(" ")));
                    }
                }
            }
        }
        apply(&mut o, name, values)?;
    }
    Ok(o)
}

fn example_of(name: &str) -> &'static str {
    match name {
        "application-type" => "module",
        "port" => "8000",
        "host" => "0.0.0.0",
        "processes" | "threads" => "4",
        "url-alias" => "/static ./static",
        "log-level" => "info",
        "user" | "group" => "www-data",
        "mpm" => "prefork",
        "maximum-requests" => "1000",
        "request-timeout" | "interrupt-timeout" => "60",
        "callable-object" => "app",
        "mount-point" => "/app",
        "application-group" => "%{GLOBAL}",
        "entry-point" => "app.wsgi",
        "header-buffer-size" | "response-buffer-size" | "send-buffer-size" | "receive-buffer-size" => "65536",
        "limit-request-body" => "10485760",
        "keep-alive-timeout" => "5",
        n if DAEMON_NUMBERS.contains(&n) => "30",
        _ => "/some/dir",
    }
}

fn number<T>(name: &str, v: &str, min: T, max: T) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    match v.trim().parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(format!("--{name} {v} is not a number from {min} to {max}; write e.g. --{name} {}", example_of(name))),
    }
}

fn apply(o: &mut Options, name: &str, mut v: Vec<String>) -> Result<(), String> {
    let first = || v.first().cloned().unwrap_or_default();
    match name {
        "application-type" => {
            o.app_type = match first().as_str() {
                "script" => AppType::Script,
                "module" => AppType::Module,
                other => {
                    return Err(format!(
                        "--application-type {other} is not supported; use 'script' (a .wsgi file) or 'module' (MODULE[:CALLABLE])"
                    ));
                }
            }
        }
        "entry-point" => o.entry = Some(first()),
        "callable-object" => o.callable = Some(first()),
        "mount-point" => {
            let m = first();
            if !m.starts_with('/') {
                return Err(format!("--mount-point {m} must be a URL path starting with '/', e.g. --mount-point /app"));
            }
            let t = m.trim_end_matches('/');
            o.mount_point = if t.is_empty() { "/".into() } else { t.to_string() };
        }
        "host" => o.host = first(),
        "port" => o.port = number(name, &first(), 1u16, 65535)?,
        "processes" => o.processes = number(name, &first(), 1u32, 256)?,
        "threads" => o.threads = number(name, &first(), 1u32, 1024)?,
        "url-alias" => {
            let path = PathBuf::from(v.pop().unwrap_or_default());
            let url = v.pop().unwrap_or_default();
            if !url.starts_with('/') {
                return Err(format!("--url-alias {url} {}: the URL must start with '/', e.g. --url-alias /static ./static", path.display()));
            }
            o.url_aliases.push((url, path));
        }
        "document-root" => o.document_root = Some(PathBuf::from(first())),
        "reload-on-changes" => o.reload_on_changes = true,
        "server-metrics" => o.server_metrics = true,
        "embedded-mode" => o.embedded_mode = true,
        "python-path" => {
            for p in first().split(':').filter(|p| !p.is_empty()) {
                o.python_paths.push(PathBuf::from(p));
            }
        }
        "python-home" => o.python_home = Some(PathBuf::from(first())),
        "working-directory" => o.working_directory = Some(PathBuf::from(first())),
        "log-level" => {
            let level = first();
            check_log_level(&level)?;
            o.log_level = level;
        }
        "access-log" => o.access_log = true,
        "log-directory" => o.log_directory = Some(PathBuf::from(first())),
        "user" => o.user = Some(first()),
        "group" => o.group = Some(first()),
        "server-root" => o.server_root = Some(PathBuf::from(first())),
        "setup-only" => o.setup_only = true,
        "application-group" => o.application_group = first(),
        "maximum-requests" => o.maximum_requests = number(name, &first(), 0u64, u32::MAX as u64)?,
        "request-timeout" => o.request_timeout = number(name, &first(), 0u64, 86400 * 365)?,
        "interrupt-timeout" => o.interrupt_timeout = number(name, &first(), 0u64, 86400 * 365)?,
        "mpm" => {
            o.mpm = match first().as_str() {
                "event" => Mpm::Event,
                "worker" => Mpm::Worker,
                "prefork" => Mpm::Prefork,
                other => return Err(format!("--mpm {other} is not an Apache MPM; use event, worker or prefork")),
            }
        }
        n if DAEMON_NUMBERS.contains(&n) => {
            let value = number(name, &first(), 0u64, u32::MAX as u64)?;
            o.daemon_options.push((name.to_string(), value.to_string()));
        }
        "python-eggs" => o.daemon_options.push((name.to_string(), conf_word(name, &first())?)),
        "server-name" => o.server_lines.push(format!("ServerName {}", conf_word(name, &first())?)),
        "keep-alive-timeout" => o.server_lines.push(format!("KeepAliveTimeout {}", number(name, &first(), 0u64, 86400)?)),
        "limit-request-body" => o.server_lines.push(format!("LimitRequestBody {}", number(name, &first(), 0u64, i64::MAX as u64)?)),
        "setenv" => {
            let value = v.pop().unwrap_or_default();
            let var = v.pop().unwrap_or_default();
            o.server_lines.push(format!("SetEnv {} {}", conf_word(name, &var)?, conf_word(name, &value)?));
        }
        "passenv" => o.server_lines.push(format!("PassEnv {}", conf_word(name, &first())?)),
        "enable-sendfile" => {
            o.server_lines.push("EnableSendfile On".into());
            o.server_lines.push("WSGIEnableSendfile On".into());
        }
        "map-head-to-get" => {
            let m = first();
            if !["on", "off", "auto"].contains(&m.to_ascii_lowercase().as_str()) {
                return Err(format!("--map-head-to-get {m}: use On, Off or Auto"));
            }
            o.server_lines.push(format!("WSGIMapHEADToGET {m}"));
        }
        "chunked-request" => o.server_lines.push("WSGIChunkedRequest On".into()),
        "error-override" => o.server_lines.push("WSGIErrorOverride On".into()),
        _ => return Err(format!("--{name} is listed but not handled; this is a bug in mod_wsgi-express")),
    }
    Ok(())
}

const LEVELS: &[&str] = &[
    "emerg", "alert", "crit", "error", "warn", "notice", "info", "debug", "trace1", "trace2", "trace3",
    "trace4", "trace5", "trace6", "trace7", "trace8",
];

/// Apache's `LogLevel` syntax: `LEVEL` and/or `module:LEVEL` words.
fn check_log_level(value: &str) -> Result<(), String> {
    let words: Vec<&str> = value.split_whitespace().collect();
    if words.is_empty() {
        return Err("--log-level needs a level; write e.g. --log-level info".into());
    }
    for w in words {
        let level = w.rsplit(':').next().unwrap_or(w);
        if !LEVELS.contains(&level) {
            return Err(format!(
                "--log-level '{w}' is not an Apache log level; use one of {} (or module:LEVEL)",
                LEVELS[..8].join(", ")
            ));
        }
    }
    Ok(())
}

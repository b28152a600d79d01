//! WSGIDaemonProcess NAME [option=value ...]
//!
//! Every option mod_wsgi 6 accepts is parsed and checked here, so an existing configuration
//! loads unchanged. Options this project does not act on yet are listed in
//! [`UNIMPLEMENTED_OPTIONS`]; the ones a definition uses are recorded in
//! [`DaemonProcess::unimplemented`] so one startup warning can name them.

use std::time::Duration;

use super::ConfigResult;
use super::options::{RawOption, parse_number, parse_on_off, parse_options};
use super::words::Cursor;

const D: &str = "WSGIDaemonProcess";

/// Every option WSGIDaemonProcess accepts, in mod_wsgi's documentation order.
pub const DAEMON_OPTIONS: &[&str] = &[
    "processes",
    "threads",
    "display-name",
    "home",
    "user",
    "group",
    "supplementary-groups",
    "umask",
    "lang",
    "locale",
    "chroot",
    "script-user",
    "script-group",
    "python-home",
    "python-path",
    "python-eggs",
    "switch-interval",
    "restart-interval",
    "maximum-requests",
    "inactivity-timeout",
    "request-timeout",
    "interrupt-timeout",
    "deadlock-timeout",
    "startup-timeout",
    "graceful-timeout",
    "eviction-timeout",
    "shutdown-timeout",
    "connect-timeout",
    "socket-timeout",
    "queue-timeout",
    "listen-backlog",
    "socket-user",
    "cpu-time-limit",
    "cpu-priority",
    "memory-limit",
    "virtual-memory-limit",
    "stack-size",
    "receive-buffer-size",
    "send-buffer-size",
    "header-buffer-size",
    "response-buffer-size",
    "response-socket-timeout",
    "response-flush-delay",
    "server-metrics",
    // Accepted by mod_wsgi 4.x, gone in 6.x; kept so old configurations still load.
    "newrelic-config-file",
    "newrelic-environment",
];

/// Why an option of [`UNIMPLEMENTED_OPTIONS`] has no effect here, for the startup warning.
pub fn unimplemented_reason(option: &str) -> &'static str {
    match option {
        "response-buffer-size" => "responses come from the daemon in framed records, written as they arrive; there is no buffer to size",
        "response-flush-delay" => "each block the application yields is passed on at once; nothing waits to be flushed",
        "newrelic-config-file" | "newrelic-environment" => "mod_wsgi no longer starts the New Relic agent; configure the agent in the application",
        _ => "not implemented by this version",
    }
}

/// Options that are parsed and validated but not acted on by the daemon.
pub const UNIMPLEMENTED_OPTIONS: &[&str] = &[
    "response-buffer-size",
    "response-flush-delay",
    "newrelic-config-file",
    "newrelic-environment",
];

/// The largest thread count mod_wsgi allows (its thread stack uses 16-bit indexes).
pub const MAX_THREADS: u32 = 0xffff - 2;

/// One WSGIDaemonProcess definition. Durations are given in whole seconds in the config.
/// `Option<Duration>` fields are `None` when the feature is off (the value was 0 or absent),
/// unless noted otherwise.
#[derive(Clone, Debug, PartialEq)]
pub struct DaemonProcess {
    pub name: String,
    /// Number of processes (default 1).
    pub processes: u32,
    /// True iff `processes=` was given (sets wsgi.multiprocess, even for processes=1).
    pub multiprocess: bool,
    /// Request threads per process (default 15).
    pub threads: u32,
    /// Process title; `%{GROUP}` already expanded to `(wsgi:NAME)`.
    pub display_name: Option<String>,
    /// User name or `#uid` (default: Apache's User). Never root.
    pub user: Option<String>,
    /// Group name or `#gid` (default: Apache's Group).
    pub group: Option<String>,
    pub supplementary_groups: Vec<String>,
    pub umask: Option<u32>,
    pub chroot: Option<String>,
    /// Working directory (absolute), also sys.path[0].
    pub home: Option<String>,
    pub python_home: Option<String>,
    /// `python-path` split at `:`.
    pub python_path: Vec<String>,
    pub python_eggs: Option<String>,
    pub lang: Option<String>,
    pub locale: Option<String>,
    /// `sys.setswitchinterval()` value in seconds.
    pub switch_interval: Option<f64>,
    /// Thread stack size in bytes.
    pub stack_size: Option<u64>,
    /// Restart after this many requests; 0 = never.
    pub maximum_requests: u64,
    pub restart_interval: Option<Duration>,
    pub inactivity_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub interrupt_timeout: Option<Duration>,
    /// Default 15 s; zero means restart at once.
    pub graceful_timeout: Duration,
    /// `None`: use `graceful_timeout` (see [`DaemonProcess::eviction_timeout_or_graceful`]).
    pub eviction_timeout: Option<Duration>,
    /// Default 5 s.
    pub shutdown_timeout: Duration,
    /// Default 300 s; `None` when set to 0 (detection off).
    pub deadlock_timeout: Option<Duration>,
    pub startup_timeout: Option<Duration>,
    /// Default 15 s.
    pub connect_timeout: Duration,
    /// `None`: use Apache's Timeout.
    pub socket_timeout: Option<Duration>,
    /// `None`: use `socket_timeout`, then Apache's Timeout.
    pub response_socket_timeout: Option<Duration>,
    pub queue_timeout: Option<Duration>,
    /// Default 100.
    pub listen_backlog: u32,
    /// Bytes; `None` = system default. At least 512.
    pub send_buffer_size: Option<u32>,
    /// Bytes; `None` = system default. At least 512.
    pub receive_buffer_size: Option<u32>,
    /// Bytes; `None` = default (32768). At least 8192.
    pub header_buffer_size: Option<u32>,
    /// Bytes; `None` = default (65536). At least 65536.
    pub response_buffer_size: Option<u32>,
    pub socket_user: Option<String>,
    pub script_user: Option<String>,
    pub script_group: Option<String>,
    pub cpu_time_limit: Option<Duration>,
    /// -20 ..= 20, default 0.
    pub cpu_priority: i32,
    /// Bytes.
    pub memory_limit: Option<u64>,
    /// Bytes.
    pub virtual_memory_limit: Option<u64>,
    pub server_metrics: bool,
    /// Options given in this definition that the daemon does not act on yet (each once,
    /// in the order given).
    pub unimplemented: Vec<String>,
}

impl DaemonProcess {
    /// A definition with mod_wsgi's defaults, as if no option was given.
    pub fn with_defaults(name: &str) -> Self {
        DaemonProcess {
            name: name.to_string(),
            processes: 1,
            multiprocess: false,
            threads: 15,
            display_name: None,
            user: None,
            group: None,
            supplementary_groups: Vec::new(),
            umask: None,
            chroot: None,
            home: None,
            python_home: None,
            python_path: Vec::new(),
            python_eggs: None,
            lang: None,
            locale: None,
            switch_interval: None,
            stack_size: None,
            maximum_requests: 0,
            restart_interval: None,
            inactivity_timeout: None,
            request_timeout: None,
            interrupt_timeout: None,
            graceful_timeout: Duration::from_secs(15),
            eviction_timeout: None,
            shutdown_timeout: Duration::from_secs(5),
            deadlock_timeout: Some(Duration::from_secs(300)),
            startup_timeout: None,
            connect_timeout: Duration::from_secs(15),
            socket_timeout: None,
            response_socket_timeout: None,
            queue_timeout: None,
            listen_backlog: 100,
            send_buffer_size: None,
            receive_buffer_size: None,
            header_buffer_size: None,
            response_buffer_size: None,
            socket_user: None,
            script_user: None,
            script_group: None,
            cpu_time_limit: None,
            cpu_priority: 0,
            memory_limit: None,
            virtual_memory_limit: None,
            server_metrics: false,
            unimplemented: Vec::new(),
        }
    }

    /// The eviction timeout, falling back to the graceful timeout as mod_wsgi does.
    pub fn eviction_timeout_or_graceful(&self) -> Duration {
        self.eviction_timeout.unwrap_or(self.graceful_timeout)
    }

    /// The socket timeout, falling back to Apache's Timeout.
    pub fn socket_timeout_or(&self, apache_timeout: Duration) -> Duration {
        self.socket_timeout.unwrap_or(apache_timeout)
    }

    /// The response socket timeout, falling back to the socket timeout, then Apache's Timeout.
    pub fn response_socket_timeout_or(&self, apache_timeout: Duration) -> Duration {
        self.response_socket_timeout
            .unwrap_or_else(|| self.socket_timeout_or(apache_timeout))
    }

    /// One line naming the options that are accepted but ignored, or `None` when there are none.
    pub fn unimplemented_warning(&self) -> Option<String> {
        if self.unimplemented.is_empty() {
            return None;
        }
        Some(format!(
            "{D} '{}': option(s) {} accepted for compatibility but not acted on yet; remove them to silence this warning",
            self.name,
            self.unimplemented.join(", ")
        ))
    }
}

/// Parse `WSGIDaemonProcess NAME [option=value ...]` from the raw argument string.
pub fn parse_daemon_process(raw: &str) -> ConfigResult<DaemonProcess> {
    let mut cursor = Cursor::new(raw);
    let name = match cursor.next_word() {
        None => {
            return Err(format!(
                "{D}: needs a group name; write e.g. {D} myapp processes=2 threads=15"
            ));
        }
        Some(w) if w.unterminated => {
            return Err(format!(
                "{D}: the group name '{}' opens a quote that is never closed; add the closing quote",
                w.text
            ));
        }
        Some(w) => w.text,
    };
    check_name(&name)?;

    let mut daemon = DaemonProcess::with_defaults(&name);
    for option in parse_options(D, &mut cursor, DAEMON_OPTIONS)? {
        apply(&mut daemon, &option)?;
        if UNIMPLEMENTED_OPTIONS.contains(&option.name.as_str())
            && !daemon.unimplemented.contains(&option.name)
        {
            daemon.unimplemented.push(option.name.clone());
        }
    }
    if daemon.script_user.is_some() && daemon.script_group.is_some() {
        return Err(format!(
            "{D}: script-user and script-group cannot both be given; keep only one of them"
        ));
    }
    Ok(daemon)
}

fn check_name(name: &str) -> ConfigResult<()> {
    if name.is_empty() {
        return Err(format!(
            "{D}: the group name is empty; write e.g. {D} myapp threads=15"
        ));
    }
    if let Some((key, _)) = name.split_once('=')
        && super::options::suggest(key, DAEMON_OPTIONS).is_some()
    {
        return Err(format!(
            "{D}: the first argument '{name}' looks like an option, but the group name must come first; write e.g. {D} myapp {name}"
        ));
    }
    if name.starts_with('%') {
        return Err(format!(
            "{D}: the group name '{name}' starts with '%', which WSGIProcessGroup reads as a substitution; choose a plain name, e.g. myapp"
        ));
    }
    Ok(())
}

/// Apply one option to `daemon`, checking its value.
fn apply(daemon: &mut DaemonProcess, option: &RawOption) -> ConfigResult<()> {
    let name = option.name.as_str();
    let value = option.value.as_str();
    let secs = |example: &str| -> ConfigResult<Duration> {
        parse_number::<u64>(D, name, value, example).map(Duration::from_secs)
    };
    let optional_secs = |example: &str| -> ConfigResult<Option<Duration>> {
        secs(example).map(|d| (!d.is_zero()).then_some(d))
    };
    let text = |example: &str| -> ConfigResult<String> {
        if value.is_empty() {
            Err(format!(
                "{D}: option '{name}' needs a value; write e.g. {name}={example}"
            ))
        } else {
            Ok(value.to_string())
        }
    };

    match name {
        "processes" => {
            let n = parse_number::<u32>(D, name, value, "2")?;
            if n == 0 {
                return Err(format!(
                    "{D}: processes=0 would start no process; give 1 or more, e.g. processes=2"
                ));
            }
            daemon.processes = n;
            daemon.multiprocess = true;
        }
        "threads" => {
            let n = parse_number::<u32>(D, name, value, "15")?;
            if n == 0 {
                return Err(format!(
                    "{D}: threads=0 (mod_wsgi's managed-process mode) is not supported; give 1 or more, e.g. threads=15"
                ));
            }
            if n > MAX_THREADS {
                return Err(format!(
                    "{D}: threads={n} is more than the limit of {MAX_THREADS}; use more processes instead"
                ));
            }
            daemon.threads = n;
        }
        "display-name" => {
            daemon.display_name = match value {
                "" => None,
                "%{GROUP}" => Some(format!("(wsgi:{})", daemon.name)),
                other => Some(other.to_string()),
            };
        }
        "user" => {
            let user = text("www-data")?;
            if is_root(&user) {
                return Err(format!(
                    "{D}: user={user} is refused, as a web application must not run as root; name an unprivileged user, e.g. user=www-data"
                ));
            }
            daemon.user = Some(user);
        }
        "group" => daemon.group = Some(text("www-data")?),
        "supplementary-groups" => {
            daemon.supplementary_groups = value
                .split(',')
                .map(str::trim)
                .filter(|g| !g.is_empty())
                .map(String::from)
                .collect();
        }
        "umask" => daemon.umask = Some(parse_umask(value)?),
        "chroot" => daemon.chroot = Some(absolute(name, value, "/srv/jail")?),
        "home" => daemon.home = Some(absolute(name, value, "/srv/www/myapp")?),
        "python-home" => daemon.python_home = Some(text("/srv/venv")?),
        "python-path" => {
            daemon.python_path = value
                .split(':')
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
        }
        "python-eggs" => daemon.python_eggs = Some(text("/tmp/python-eggs")?),
        "lang" => daemon.lang = Some(text("en_US.UTF-8")?),
        "locale" => daemon.locale = Some(text("en_US.UTF-8")?),
        "switch-interval" => {
            let seconds = value.parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0).ok_or_else(|| {
                format!("{D}: switch-interval='{value}' is not a positive number of seconds; write e.g. switch-interval=0.005")
            })?;
            daemon.switch_interval = Some(seconds);
        }
        "stack-size" => {
            let n = parse_number::<u64>(D, name, value, "524288")?;
            if n == 0 {
                return Err(format!(
                    "{D}: stack-size=0 is not a usable stack size; give bytes, e.g. stack-size=524288"
                ));
            }
            daemon.stack_size = Some(n);
        }
        "maximum-requests" => daemon.maximum_requests = parse_number(D, name, value, "1000")?,
        "restart-interval" => daemon.restart_interval = optional_secs("3600")?,
        "inactivity-timeout" => daemon.inactivity_timeout = optional_secs("300")?,
        "request-timeout" => daemon.request_timeout = optional_secs("60")?,
        "interrupt-timeout" => daemon.interrupt_timeout = optional_secs("10")?,
        "deadlock-timeout" => daemon.deadlock_timeout = optional_secs("60")?,
        "startup-timeout" => daemon.startup_timeout = optional_secs("15")?,
        "graceful-timeout" => daemon.graceful_timeout = secs("15")?,
        "eviction-timeout" => daemon.eviction_timeout = optional_secs("15")?,
        "shutdown-timeout" => daemon.shutdown_timeout = secs("5")?,
        "connect-timeout" => daemon.connect_timeout = secs("15")?,
        "socket-timeout" => daemon.socket_timeout = optional_secs("60")?,
        "response-socket-timeout" => daemon.response_socket_timeout = optional_secs("60")?,
        "queue-timeout" => daemon.queue_timeout = optional_secs("45")?,
        "cpu-time-limit" => daemon.cpu_time_limit = optional_secs("3600")?,
        "listen-backlog" => daemon.listen_backlog = parse_number(D, name, value, "100")?,
        "send-buffer-size" => {
            daemon.send_buffer_size = buffer_size(name, value, 512, "the system default")?
        }
        "receive-buffer-size" => {
            daemon.receive_buffer_size = buffer_size(name, value, 512, "the system default")?
        }
        "header-buffer-size" => {
            daemon.header_buffer_size = buffer_size(name, value, 8192, "the default of 32768")?
        }
        "response-buffer-size" => {
            daemon.response_buffer_size = buffer_size(name, value, 65536, "the default of 65536")?
        }
        "socket-user" => daemon.socket_user = Some(text("www-data")?),
        "script-user" => daemon.script_user = Some(text("www-data")?),
        "script-group" => daemon.script_group = Some(text("www-data")?),
        "cpu-priority" => {
            daemon.cpu_priority = value
                .parse::<i32>()
                .ok()
                .filter(|p| (-20..=20).contains(p))
                .ok_or_else(|| format!("{D}: cpu-priority='{value}' is not a number from -20 to 20; write e.g. cpu-priority=0"))?;
        }
        "memory-limit" => {
            daemon.memory_limit = nonzero(parse_number(D, name, value, "1073741824")?)
        }
        "virtual-memory-limit" => {
            daemon.virtual_memory_limit = nonzero(parse_number(D, name, value, "2147483648")?)
        }
        "server-metrics" => daemon.server_metrics = parse_on_off(D, name, value)?,
        "response-flush-delay" => {
            if !value
                .parse::<f64>()
                .is_ok_and(|v| v.is_finite() && v >= 0.0)
            {
                return Err(format!(
                    "{D}: response-flush-delay='{value}' is not a number of 0 or more; write e.g. response-flush-delay=0"
                ));
            }
        }
        "newrelic-config-file" | "newrelic-environment" => {}
        _ => unreachable!("parse_options only returns names from DAEMON_OPTIONS"),
    }
    Ok(())
}

fn is_root(user: &str) -> bool {
    user == "root"
        || user
            .strip_prefix('#')
            .is_some_and(|uid| !uid.is_empty() && uid.bytes().all(|b| b == b'0'))
}

fn parse_umask(value: &str) -> ConfigResult<u32> {
    let ok = !value.is_empty() && value.bytes().all(|b| (b'0'..=b'7').contains(&b));
    match u32::from_str_radix(value, 8) {
        Ok(mask) if ok && mask <= 0o777 => Ok(mask),
        _ => Err(format!(
            "{D}: umask='{value}' is not an octal mask from 000 to 777; write e.g. umask=0022"
        )),
    }
}

fn absolute(name: &str, value: &str, example: &str) -> ConfigResult<String> {
    if value.starts_with('/') {
        Ok(value.to_string())
    } else {
        Err(format!(
            "{D}: {name}='{value}' is not an absolute path; give the full path, e.g. {name}={example}"
        ))
    }
}

/// A socket/buffer size in bytes: 0 means the default; otherwise at least `minimum`.
fn buffer_size(name: &str, value: &str, minimum: u32, default: &str) -> ConfigResult<Option<u32>> {
    let n = parse_number::<u32>(D, name, value, &minimum.to_string())?;
    if n != 0 && n < minimum {
        return Err(format!(
            "{D}: {name}={n} is too small; give {minimum} or more, or 0 for {default}"
        ));
    }
    Ok(nonzero(n))
}

fn nonzero<T: Default + PartialEq>(n: T) -> Option<T> {
    if n == T::default() { None } else { Some(n) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> DaemonProcess {
        parse_daemon_process(raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn err(raw: &str) -> String {
        parse_daemon_process(raw).expect_err(raw)
    }

    #[test]
    fn defaults() {
        let d = parse("myapp");
        assert_eq!(d, DaemonProcess::with_defaults("myapp"));
        assert_eq!(d.processes, 1);
        assert!(!d.multiprocess);
        assert_eq!(d.threads, 15);
        assert_eq!(d.graceful_timeout, Duration::from_secs(15));
        assert_eq!(d.shutdown_timeout, Duration::from_secs(5));
        assert_eq!(d.deadlock_timeout, Some(Duration::from_secs(300)));
        assert_eq!(d.connect_timeout, Duration::from_secs(15));
        assert_eq!(d.socket_timeout, None);
        assert_eq!(d.restart_interval, None);
        assert_eq!(d.listen_backlog, 100);
        assert_eq!(d.maximum_requests, 0);
        assert!(d.unimplemented.is_empty());
        assert_eq!(d.unimplemented_warning(), None);
    }

    #[test]
    fn common_options() {
        let d = parse(
            "myapp processes=2 threads=5 display-name=%{GROUP} user=www-data group=www-data \
             supplementary-groups=a,b,,c umask=0022 home=/srv/www python-home=/srv/venv \
             python-path=/srv/lib:/srv/more: lang=en_US.UTF-8 locale='en_US.UTF-8' maximum-requests=1000",
        );
        assert_eq!(d.processes, 2);
        assert!(d.multiprocess);
        assert_eq!(d.threads, 5);
        assert_eq!(d.display_name.as_deref(), Some("(wsgi:myapp)"));
        assert_eq!(d.user.as_deref(), Some("www-data"));
        assert_eq!(d.group.as_deref(), Some("www-data"));
        assert_eq!(d.supplementary_groups, ["a", "b", "c"]);
        assert_eq!(d.umask, Some(0o022));
        assert_eq!(d.home.as_deref(), Some("/srv/www"));
        assert_eq!(d.python_home.as_deref(), Some("/srv/venv"));
        assert_eq!(d.python_path, ["/srv/lib", "/srv/more"]);
        assert_eq!(d.lang.as_deref(), Some("en_US.UTF-8"));
        assert_eq!(d.locale.as_deref(), Some("en_US.UTF-8"));
        assert_eq!(d.maximum_requests, 1000);
        assert!(d.unimplemented.is_empty());
    }

    #[test]
    fn processes_one_sets_multiprocess() {
        let d = parse("g processes=1");
        assert_eq!(d.processes, 1);
        assert!(d.multiprocess);
    }

    #[test]
    fn display_name_literal_and_quoted() {
        assert_eq!(
            parse("g display-name=web").display_name.as_deref(),
            Some("web")
        );
        assert_eq!(
            parse("g display-name='(wsgi:localhost:8000:0)'")
                .display_name
                .as_deref(),
            Some("(wsgi:localhost:8000:0)")
        );
        assert_eq!(
            parse("g display-name='%{GROUP}'").display_name.as_deref(),
            Some("(wsgi:g)")
        );
    }

    #[test]
    fn timeouts() {
        let d = parse(
            "g restart-interval=3600 inactivity-timeout=0 request-timeout=60 interrupt-timeout=10 \
             deadlock-timeout=0 startup-timeout=15 graceful-timeout=0 eviction-timeout=20 shutdown-timeout=7 \
             connect-timeout=3 socket-timeout=60 response-socket-timeout=30 queue-timeout=45 listen-backlog=500",
        );
        let s = Duration::from_secs;
        assert_eq!(d.restart_interval, Some(s(3600)));
        assert_eq!(d.inactivity_timeout, None);
        assert_eq!(d.request_timeout, Some(s(60)));
        assert_eq!(d.interrupt_timeout, Some(s(10)));
        assert_eq!(d.deadlock_timeout, None);
        assert_eq!(d.startup_timeout, Some(s(15)));
        assert_eq!(d.graceful_timeout, s(0));
        assert_eq!(d.eviction_timeout, Some(s(20)));
        assert_eq!(d.shutdown_timeout, s(7));
        assert_eq!(d.connect_timeout, s(3));
        assert_eq!(d.socket_timeout, Some(s(60)));
        assert_eq!(d.response_socket_timeout, Some(s(30)));
        assert_eq!(d.queue_timeout, Some(s(45)));
        assert_eq!(d.listen_backlog, 500);
        assert_eq!(d.eviction_timeout_or_graceful(), s(20));
        assert!(d.unimplemented.is_empty(), "{:?}", d.unimplemented);
    }

    #[test]
    fn timeout_fallbacks() {
        let s = Duration::from_secs;
        let d = parse("g");
        assert_eq!(d.eviction_timeout_or_graceful(), s(15));
        assert_eq!(d.socket_timeout_or(s(300)), s(300));
        assert_eq!(d.response_socket_timeout_or(s(300)), s(300));
        let d = parse("g socket-timeout=60");
        assert_eq!(d.response_socket_timeout_or(s(300)), s(60));
        let d = parse("g socket-timeout=60 response-socket-timeout=5");
        assert_eq!(d.response_socket_timeout_or(s(300)), s(5));
    }

    #[test]
    fn mod_wsgi_express_style_definition_loads() {
        // Shaped like the definition mod_wsgi-express generates.
        let d = parse(
            "localhost:8000 display-name='(wsgi:localhost:8000:0)' home='/tmp' threads=5 \
             maximum-requests=0 python-path='' python-eggs='/tmp/python-eggs' lang='C.UTF-8' locale='C.UTF-8' \
             listen-backlog=100 queue-timeout=45 socket-timeout=60 connect-timeout=15 request-timeout=60 \
             inactivity-timeout=0 startup-timeout=15 deadlock-timeout=60 graceful-timeout=15 eviction-timeout=0 \
             restart-interval=0 cpu-time-limit=0 shutdown-timeout=5 send-buffer-size=0 receive-buffer-size=0 \
             header-buffer-size=0 response-buffer-size=0 response-socket-timeout=0 server-metrics=Off",
        );
        assert_eq!(d.name, "localhost:8000");
        assert_eq!(d.threads, 5);
        assert!(d.python_path.is_empty());
        assert_eq!(d.send_buffer_size, None);
        assert_eq!(d.eviction_timeout, None);
        assert!(!d.server_metrics);
        assert!(!d.unimplemented.contains(&"python-eggs".to_string()));
        assert!(!d.unimplemented.contains(&"server-metrics".to_string()));
        let warning = d.unimplemented_warning().unwrap();
        assert!(
            warning.starts_with(
                "WSGIDaemonProcess 'localhost:8000': option(s) response-buffer-size"
            ),
            "{warning}"
        );
    }

    #[test]
    fn every_option_is_accepted() {
        let values = |name: &str| match name {
            "display-name"
            | "user"
            | "group"
            | "supplementary-groups"
            | "lang"
            | "locale"
            | "socket-user"
            | "script-user"
            | "python-home"
            | "python-path"
            | "python-eggs"
            | "newrelic-config-file"
            | "newrelic-environment" => "x",
            "chroot" | "home" => "/x",
            "umask" => "022",
            "switch-interval" => "0.005",
            "server-metrics" => "on",
            "send-buffer-size" | "receive-buffer-size" => "1024",
            "header-buffer-size" => "8192",
            "response-buffer-size" => "65536",
            "cpu-priority" => "-5",
            _ => "1",
        };
        for name in DAEMON_OPTIONS {
            if *name == "script-group" {
                continue; // exercised below: it conflicts with script-user
            }
            let raw = format!("g {name}={}", values(name));
            let d = parse_daemon_process(&raw).unwrap_or_else(|e| panic!("{raw}: {e}"));
            let expect_unimplemented = UNIMPLEMENTED_OPTIONS.contains(name);
            assert_eq!(
                d.unimplemented.contains(&name.to_string()),
                expect_unimplemented,
                "{name}"
            );
        }
        assert_eq!(
            parse("g script-group=staff").script_group.as_deref(),
            Some("staff")
        );
        for name in UNIMPLEMENTED_OPTIONS {
            assert!(DAEMON_OPTIONS.contains(name), "{name}");
        }
    }

    #[test]
    fn other_typed_values() {
        let d = parse(
            "g chroot=/jail stack-size=524288 switch-interval=0.002 cpu-time-limit=10 cpu-priority=-20 \
             memory-limit=1000 virtual-memory-limit=0 send-buffer-size=512 header-buffer-size=65536 server-metrics=ON \
             socket-user=#33 script-user=bob",
        );
        assert_eq!(d.chroot.as_deref(), Some("/jail"));
        assert_eq!(d.stack_size, Some(524288));
        assert_eq!(d.switch_interval, Some(0.002));
        assert_eq!(d.cpu_time_limit, Some(Duration::from_secs(10)));
        assert_eq!(d.cpu_priority, -20);
        assert_eq!(d.memory_limit, Some(1000));
        assert_eq!(d.virtual_memory_limit, None);
        assert_eq!(d.send_buffer_size, Some(512));
        assert_eq!(d.header_buffer_size, Some(65536));
        assert!(d.server_metrics);
        assert_eq!(d.socket_user.as_deref(), Some("#33"));
        assert_eq!(d.script_user.as_deref(), Some("bob"));
    }

    #[test]
    fn repeated_option_last_wins_and_is_listed_once() {
        let d = parse("g threads=3 threads=4 memory-limit=1 memory-limit=2 response-flush-delay=1 response-flush-delay=2");
        assert_eq!(d.threads, 4);
        assert_eq!(d.memory_limit, Some(2));
        assert_eq!(d.unimplemented, ["response-flush-delay"]);
    }

    #[test]
    fn name_errors() {
        assert_eq!(
            err(""),
            "WSGIDaemonProcess: needs a group name; write e.g. WSGIDaemonProcess myapp processes=2 threads=15"
        );
        assert!(err("''").contains("group name is empty"));
        assert_eq!(
            err("threads=5"),
            "WSGIDaemonProcess: the first argument 'threads=5' looks like an option, but the group name must come first; write e.g. WSGIDaemonProcess myapp threads=5"
        );
        assert!(err("%{GLOBAL}").contains("starts with '%'"));
        assert!(err("'unclosed").contains("never closed"));
        // '=' in an otherwise odd name is allowed (mod_wsgi allows any name).
        assert_eq!(parse("a=b").name, "a=b");
    }

    #[test]
    fn misspelt_option_suggests_nearest() {
        assert_eq!(
            err("g thread=5"),
            "WSGIDaemonProcess: unknown option 'thread=5'; did you mean 'threads'?"
        );
        assert!(err("g proceses=2").contains("did you mean 'processes'?"));
        assert!(err("g python_path=/x").contains("did you mean 'python-path'?"));
        assert!(err("g max-requests=5").contains("did you mean 'maximum-requests'?"));
        let e = err("g frobnicate=1");
        assert!(e.starts_with("WSGIDaemonProcess: unknown option 'frobnicate=1'; valid options are processes, threads"), "{e}");
    }

    #[test]
    fn bad_values() {
        assert_eq!(
            err("g threads=0"),
            "WSGIDaemonProcess: threads=0 (mod_wsgi's managed-process mode) is not supported; give 1 or more, e.g. threads=15"
        );
        assert!(err("g threads=70000").contains("more than the limit"));
        assert!(err("g processes=0").contains("processes=0 would start no process"));
        assert_eq!(
            err("g threads=five"),
            "WSGIDaemonProcess: threads='five' is not a whole number of 0 or more; write e.g. threads=15"
        );
        assert!(err("g threads=").contains("option 'threads' needs a value"));
        assert!(err("g request-timeout=-1").contains("not a whole number"));
        assert!(err("g request-timeout=1.5").contains("not a whole number"));
        assert!(err("g umask=0999").contains("not an octal mask"));
        assert!(err("g umask=abc").contains("not an octal mask"));
        assert!(err("g umask=07777").contains("not an octal mask"));
        assert!(err("g umask=").contains("not an octal mask"));
        assert!(err("g home=relative").contains("home='relative' is not an absolute path"));
        assert!(err("g chroot=jail").contains("not an absolute path"));
        assert!(err("g send-buffer-size=100").contains(
            "send-buffer-size=100 is too small; give 512 or more, or 0 for the system default"
        ));
        assert!(err("g header-buffer-size=4096").contains("give 8192 or more"));
        assert!(err("g response-buffer-size=1024").contains("give 65536 or more"));
        assert!(err("g cpu-priority=21").contains("from -20 to 20"));
        assert!(err("g server-metrics=maybe").contains("not On or Off"));
        assert!(err("g switch-interval=0").contains("positive number"));
        assert!(err("g stack-size=0").contains("stack-size=0"));
        assert!(err("g response-flush-delay=x").contains("response-flush-delay"));
        assert!(err("g group=").contains("option 'group' needs a value"));
    }

    #[test]
    fn root_is_refused() {
        for root in ["root", "#0", "#000"] {
            let e = err(&format!("g user={root}"));
            assert!(e.contains("must not run as root"), "{root}: {e}");
        }
        assert_eq!(parse("g user=#33").user.as_deref(), Some("#33"));
        assert_eq!(parse("g user=rooty").user.as_deref(), Some("rooty"));
    }

    #[test]
    fn script_user_and_group_conflict() {
        assert!(
            err("g script-user=a script-group=b")
                .contains("script-user and script-group cannot both be given")
        );
    }

    #[test]
    fn options_must_be_name_value() {
        assert!(err("g threads 5").contains("write it as threads=5"));
        assert!(err("g lonely").contains("unexpected argument 'lonely'"));
    }
}

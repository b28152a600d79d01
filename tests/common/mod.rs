//! Integration-test harness: runs a real Apache httpd 2.4 (`/usr/sbin/apache2`) with a generated
//! configuration that loads our module (or, for differential tests, Debian's mod_wsgi), and talks
//! raw HTTP/1.x to it.
//!
//! * Every server gets its own directory `target/itest/<test>-<pid>-<n>/` (conf, scripts, htdocs,
//!   logs, run, tmp) and its own port, so tests can run in parallel threads.
//! * Apache runs in its own process group (prefork signals its whole group on shutdown, which
//!   would otherwise kill the test runner). A tiny `sh` watcher (also in its own group) kills the
//!   server if the test process dies without running `Drop` (SIGKILL, Ctrl-C, abort).
//! * When running as root the server runs as `User www-data` / `Group www-data`; the harness makes
//!   the work tree traversable for that user.
//! * The directory is deleted when an `Apache` is dropped/stopped without a panic in progress;
//!   it is kept after a failure (or always, with `MOD_WSGI_ITEST_KEEP=1`) for post-mortems.
//!
//! Std only: the few libc calls needed (`kill`, `geteuid`) are declared by hand.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub mod apps;
pub mod mode;
pub mod venv;

// ---------------------------------------------------------------------------------------------
// libc bits (std links libc anyway; no crate dependency needed)
// ---------------------------------------------------------------------------------------------

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn geteuid() -> u32;
}

pub const SIGHUP: i32 = 1;
pub const SIGKILL: i32 = 9;
pub const SIGUSR1: i32 = 10;
pub const SIGTERM: i32 = 15;
pub const SIGWINCH: i32 = 28;

fn send_signal(pid: i32, sig: i32) -> bool {
    // SAFETY: plain syscall wrapper.
    unsafe { kill(pid, sig) == 0 }
}

pub fn is_root() -> bool {
    // SAFETY: plain syscall wrapper.
    unsafe { geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------------
// Constants and paths
// ---------------------------------------------------------------------------------------------

pub const APACHE_BIN: &str = "/usr/sbin/apache2";
pub const APACHE_MODULES: &str = "/usr/lib/apache2/modules";
/// Debian's C mod_wsgi (4.9.x), for differential tests and for testing the harness itself.
pub const DEBIAN_MOD_WSGI: &str = "/usr/lib/apache2/modules/mod_wsgi.so";
pub const PYTHON: &str = "/usr/bin/python3";

const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Path of our module: `$MOD_WSGI_SO`, else `<manifest>/target/release/libmod_wsgi.so`.
pub fn default_module() -> PathBuf {
    match std::env::var_os("MOD_WSGI_SO") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => manifest_dir().join("target/release/libmod_wsgi.so"),
    }
}

/// The VirtualHost of `examples/seed-<name>.conf` (`sub-url`, `root`, `daemon`) as a `vhost`
/// for `ApacheBuilder`: its paths under `/usr/local/www` become `{dir}` (so the scripts and
/// documents go to `<dir>/wsgi-scripts` and `<dir>/documents`) and port 80 the server's port.
/// Panics if the example no longer has what is substituted, so the examples stay tested.
pub fn seed_vhost(name: &str) -> String {
    let path = manifest_dir().join("examples").join(format!("seed-{name}.conf"));
    let conf = fs::read_to_string(&path).unwrap_or_else(|e| panic!("itest: read {}: {e}", path.display()));
    for needle in ["<VirtualHost *:80>", "/usr/local/www/"] {
        assert!(conf.contains(needle), "itest: {} no longer contains {needle:?}:\n{conf}", path.display());
    }
    conf.replace("<VirtualHost *:80>", "<VirtualHost *:{port}>").replace("/usr/local/www/", "{dir}/")
}

fn itest_root() -> PathBuf {
    manifest_dir().join("target").join("itest")
}

// ---------------------------------------------------------------------------------------------
// MPMs
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mpm {
    Event,
    Worker,
    Prefork,
}

impl Mpm {
    pub const ALL: [Mpm; 3] = [Mpm::Event, Mpm::Worker, Mpm::Prefork];

    pub fn name(self) -> &'static str {
        match self {
            Mpm::Event => "event",
            Mpm::Worker => "worker",
            Mpm::Prefork => "prefork",
        }
    }

    pub fn is_threaded(self) -> bool {
        !matches!(self, Mpm::Prefork)
    }

    /// Small default sizing (overridable with `ApacheBuilder::mpm_config`).
    fn default_sizing(self) -> &'static str {
        match self {
            Mpm::Event | Mpm::Worker => {
                "StartServers 2\n\
                 ServerLimit 4\n\
                 ThreadsPerChild 8\n\
                 MinSpareThreads 8\n\
                 MaxSpareThreads 32\n\
                 MaxRequestWorkers 32\n\
                 MaxConnectionsPerChild 0\n"
            }
            Mpm::Prefork => {
                "StartServers 2\n\
                 MinSpareServers 1\n\
                 MaxSpareServers 4\n\
                 MaxRequestWorkers 10\n\
                 MaxConnectionsPerChild 0\n"
            }
        }
    }
}

impl fmt::Display for Mpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// Filesystem helpers
// ---------------------------------------------------------------------------------------------

fn set_mode(path: &Path, mode: u32) {
    if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        panic!("itest: chmod {:o} {}: {e}", mode, path.display());
    }
}

/// Add `bits` to the mode of `path` if missing (best effort for paths we don't own).
fn add_mode_bits(path: &Path, bits: u32) {
    if let Ok(md) = fs::metadata(path) {
        let mode = md.permissions().mode() & 0o7777;
        if mode & bits != bits {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | bits));
        }
    }
}

/// Make every ancestor directory of `path` (excluding `/`) searchable by others (o+x), so
/// that www-data can reach it.
fn make_ancestors_traversable(path: &Path) {
    let mut cur = path.parent();
    while let Some(p) = cur {
        if p.as_os_str().is_empty() || p == Path::new("/") {
            break;
        }
        add_mode_bits(p, 0o001);
        cur = p.parent();
    }
}

/// Create `dir` and all missing parents with mode 0755.
fn mkdir_p(dir: &Path) {
    if let Err(e) = fs::create_dir_all(dir) {
        panic!("itest: mkdir -p {}: {e}", dir.display());
    }
    add_mode_bits(dir, 0o755);
}

fn write_file(path: &Path, contents: &[u8], mode: u32) {
    if let Some(parent) = path.parent() {
        mkdir_p(parent);
    }
    if let Err(e) = fs::write(path, contents) {
        panic!("itest: write {}: {e}", path.display());
    }
    set_mode(path, mode);
}

fn read_lossy(path: &Path) -> String {
    match fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    }
}

/// Last `max` bytes of a text, on a line boundary, for panic messages.
fn tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    let cut = &s[start..];
    let cut = cut.find('\n').map(|i| &cut[i + 1..]).unwrap_or(cut);
    format!("[... {} bytes omitted ...]\n{}", s.len() - cut.len(), cut)
}

fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out = out.trim_matches('_').to_string();
    if out.len() > 80 { out[out.len() - 80..].to_string() } else { out }
}

static DIR_COUNTER: AtomicUsize = AtomicUsize::new(0);

fn unique_dir(name: &str) -> PathBuf {
    let root = itest_root();
    mkdir_p(&root);
    // target/ and target/itest must be listable/traversable, and so must /work, /work/main ...
    add_mode_bits(&root, 0o755);
    add_mode_bits(root.parent().unwrap(), 0o005);
    make_ancestors_traversable(&root);
    loop {
        let n = DIR_COUNTER.fetch_add(1, Ordering::SeqCst);
        let dir = root.join(format!("{}-{}-{}", sanitize(name), std::process::id(), n));
        if dir.exists() {
            // Leftover of an earlier run whose pid happened to match: start clean.
            let _ = fs::remove_dir_all(&dir);
        }
        match fs::create_dir(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o755);
                return dir;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("itest: mkdir {}: {e}", dir.display()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ports
// ---------------------------------------------------------------------------------------------

static USED_PORTS: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A port that was free a moment ago and that no other server of this process was given.
/// MPM sizing with exactly one Apache child of `threads` worker threads (prefork: one process).
pub fn one_child(mpm: Mpm, threads: usize) -> String {
    if mpm.is_threaded() {
        format!(
            "StartServers 1\nServerLimit 1\nThreadLimit {threads}\nThreadsPerChild {threads}\n\
             MinSpareThreads 1\nMaxSpareThreads {}\nMaxRequestWorkers {threads}\n\
             MaxConnectionsPerChild 0\n",
            threads + 1
        )
    } else {
        "StartServers 1\nServerLimit 1\nMinSpareServers 1\nMaxSpareServers 1\n\
         MaxRequestWorkers 1\nMaxConnectionsPerChild 0\n"
            .to_string()
    }
}

pub fn free_port() -> u16 {
    let mut guard = USED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
    let used = guard.get_or_insert_with(HashSet::new);
    for _ in 0..1000 {
        let l = TcpListener::bind("127.0.0.1:0").expect("itest: bind 127.0.0.1:0");
        let port = l.local_addr().unwrap().port();
        drop(l);
        if used.insert(port) {
            return port;
        }
    }
    panic!("itest: could not find a free port");
}

// ---------------------------------------------------------------------------------------------
// Builder
// ---------------------------------------------------------------------------------------------

/// Configuration of one Apache instance. Creating the builder creates its directory, so
/// `dir()` is known (and `script`/`file` write immediately) before the server starts.
pub struct ApacheBuilder {
    dir: PathBuf,
    mpm: Mpm,
    module: Option<PathBuf>,
    log_level: Option<String>,
    mpm_config: Option<String>,
    conf: Vec<String>,
    vhosts: Vec<String>,
    env: Vec<(String, String)>,
    start_timeout: Duration,
    root_access: Option<String>,
}

impl Default for ApacheBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ApacheBuilder {
    /// Directory name taken from the current test's name (the libtest thread name).
    pub fn new() -> Self {
        let t = thread::current();
        let name = t.name().filter(|n| *n != "main").unwrap_or("itest").to_string();
        Self::named(&name)
    }

    pub fn named(name: &str) -> Self {
        let dir = unique_dir(name);
        for sub in ["scripts", "htdocs", "logs", "run"] {
            mkdir_p(&dir.join(sub));
        }
        // A scratch directory the server user may write to (apps recording state, etc.).
        let tmp = dir.join("tmp");
        mkdir_p(&tmp);
        set_mode(&tmp, 0o1777);
        ApacheBuilder {
            dir,
            mpm: Mpm::Event,
            module: Some(default_module()),
            log_level: None,
            mpm_config: None,
            conf: Vec::new(),
            vhosts: Vec::new(),
            env: Vec::new(),
            start_timeout: START_TIMEOUT,
            root_access: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn mpm(mut self, mpm: Mpm) -> Self {
        self.mpm = mpm;
        self
    }

    /// Module to load as `wsgi_module` (default: `MOD_WSGI_SO`); e.g. `DEBIAN_MOD_WSGI`.
    pub fn module(mut self, path: impl AsRef<Path>) -> Self {
        self.module = Some(path.as_ref().to_path_buf());
        self
    }

    /// Don't load any wsgi module (baseline behaviour of plain Apache).
    pub fn without_module(mut self) -> Self {
        self.module = None;
        self
    }

    /// `LogLevel` value; default `"warn wsgi:info"` (`"warn"` without a module).
    pub fn log_level(mut self, level: &str) -> Self {
        self.log_level = Some(level.to_string());
        self
    }

    /// Replace the default MPM sizing block (StartServers, ThreadsPerChild, ...).
    pub fn mpm_config(mut self, conf: &str) -> Self {
        self.mpm_config = Some(conf.to_string());
        self
    }

    /// Extra configuration lines for the main server, after the basics and the LoadModule
    /// of the wsgi module. `{dir}` and `{port}` are substituted.
    pub fn conf(mut self, conf: &str) -> Self {
        self.conf.push(conf.to_string());
        self
    }

    /// Appended verbatim at the end of the config (after `conf`), `{dir}`/`{port}` substituted.
    pub fn vhost(mut self, vhost: &str) -> Self {
        self.vhosts.push(vhost.to_string());
        self
    }

    /// Write `<dir>/scripts/<name>` (0644; parent dirs created 0755). No substitution.
    pub fn script(self, name: &str, python_source: &str) -> Self {
        write_file(&self.dir.join("scripts").join(name), python_source.as_bytes(), 0o644);
        self
    }

    /// Write `<dir>/<rel_path>` (0644; parent dirs created 0755). No substitution.
    pub fn file(self, rel_path: &str, contents: impl AsRef<[u8]>) -> Self {
        write_file(&self.dir.join(rel_path), contents.as_ref(), 0o644);
        self
    }

    /// Environment variable for the apache2 process (its environment is otherwise cleared
    /// down to PATH, LANG=C and RUST_BACKTRACE if set).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = t;
        self
    }

    pub fn start(self) -> Apache {
        Apache::start(self)
    }

    /// Replaces the body of `<Directory />` (default: `AllowOverride None` + `Require all denied`).
    /// The seed's Apache 2.2-style `Order allow,deny` / `Allow from all` sections only grant
    /// access when the root uses the same style, e.g. `Order deny,allow` + `Deny from all`.
    pub fn root_access(mut self, body: &str) -> Self {
        self.root_access = Some(body.to_string());
        self
    }

    fn conf_path(&self) -> PathBuf {
        self.dir.join("httpd.conf")
    }

    fn subst(&self, s: &str, port: u16) -> String {
        s.replace("{dir}", &self.dir.to_string_lossy()).replace("{port}", &port.to_string())
    }

    fn check_module(&self) {
        let Some(m) = &self.module else { return };
        if !m.is_file() {
            panic!(
                "itest: wsgi module not found at {} -- build it first (`cargo build --release`) \
                 or point MOD_WSGI_SO at the .so to test",
                m.display()
            );
        }
        // Our build output lives in the work tree: make sure the server user can read it.
        if m.starts_with(manifest_dir()) {
            add_mode_bits(m, 0o004);
            make_ancestors_traversable(m);
        }
    }

    /// Generate `<dir>/httpd.conf` for `port`.
    fn write_config(&self, port: u16) -> PathBuf {
        let d = self.dir.to_string_lossy().into_owned();
        let mut c = String::new();
        let mut line = |s: &str| {
            c.push_str(s);
            c.push('\n');
        };
        line("# Generated by tests/common/mod.rs");
        line(&format!("ServerRoot \"{d}\""));
        line(&format!("DefaultRuntimeDir \"{d}/run\""));
        line(&format!("PidFile \"{d}/run/httpd.pid\""));
        line(&format!("Listen 127.0.0.1:{port}"));
        line("ServerName localhost");
        line("ServerAdmin root@localhost");
        line("");
        line(&format!("LoadModule mpm_{0}_module {APACHE_MODULES}/mod_mpm_{0}.so", self.mpm.name()));
        for m in [
            "authz_core", "authz_host", "authn_core", "access_compat", "alias", "mime", "dir",
            "headers", "env", "setenvif",
        ] {
            line(&format!("LoadModule {m}_module {APACHE_MODULES}/mod_{m}.so"));
        }
        // Compiled into Debian's apache2, but stay portable.
        line("<IfModule !mod_unixd.c>");
        line(&format!("  LoadModule unixd_module {APACHE_MODULES}/mod_unixd.so"));
        line("</IfModule>");
        line("<IfModule !mod_log_config.c>");
        line(&format!("  LoadModule log_config_module {APACHE_MODULES}/mod_log_config.so"));
        line("</IfModule>");
        line("");
        if is_root() {
            line("User www-data");
            line("Group www-data");
        }
        line(&format!("ErrorLog \"{d}/error.log\""));
        line("LogFormat \"%h %l %u %t \\\"%r\\\" %>s %b %D\" itest");
        line(&format!("CustomLog \"{d}/access.log\" itest"));
        line("TypesConfig /etc/mime.types");
        line("DirectoryIndex index.html");
        line("");
        line(&format!("<IfModule mpm_{}_module>", self.mpm.name()));
        line(self.mpm_config.as_deref().unwrap_or(self.mpm.default_sizing()).trim_end());
        line("</IfModule>");
        line("");
        line("<Directory />");
        match &self.root_access {
            Some(body) => line(body.trim_end()),
            None => {
                line("    AllowOverride None");
                line("    Require all denied");
            }
        }
        line("</Directory>");
        line(&format!("DocumentRoot \"{d}/htdocs\""));
        line(&format!("<Directory \"{d}/htdocs\">"));
        line("    Require all granted");
        line("</Directory>");
        line("");
        let level = match (&self.log_level, &self.module) {
            (Some(l), _) => l.clone(),
            (None, Some(_)) => "warn wsgi:info".to_string(),
            (None, None) => "warn".to_string(),
        };
        if let Some(m) = &self.module {
            line(&format!("LoadModule wsgi_module \"{}\"", m.display()));
        }
        line(&format!("LogLevel {level}"));
        line("");
        for extra in &self.conf {
            line(&self.subst(extra, port));
        }
        for v in &self.vhosts {
            line(&self.subst(v, port));
        }
        let path = self.conf_path();
        write_file(&path, c.as_bytes(), 0o644);
        path
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(APACHE_BIN);
        cmd.args(args);
        cmd.env_clear();
        cmd.env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
        cmd.env("LANG", "C");
        for k in ["RUST_BACKTRACE", "RUST_LOG"] {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd.current_dir(&self.dir);
        cmd
    }
}

// ---------------------------------------------------------------------------------------------
// The running server
// ---------------------------------------------------------------------------------------------

pub struct Apache {
    pub port: u16,
    pub dir: PathBuf,
    pub mpm: Mpm,
    child: Child,
    watcher: Option<(Child, ChildStdin)>,
    pgid: i32,
    done: bool,
}

/// Outcome of `Apache::stop`.
pub struct Stopped {
    /// The parent exited on SIGTERM within 10 s and no process of its group was left over.
    pub clean: bool,
    pub status: Option<ExitStatus>,
    /// The error log as it was after shutdown.
    pub error_log: String,
}

impl Stopped {
    /// Whether the log reports a child dying from a signal (segfault, abort, ...).
    pub fn has_crash(&self) -> bool {
        log_has_crash(&self.error_log)
    }
}

pub fn log_has_crash(log: &str) -> bool {
    log.contains("exit signal") || log.contains("Segmentation fault") || log.contains("AH00060")
}

impl Apache {
    /// Run `apache2 -t` on the generated configuration without starting anything.
    /// Returns (success, combined stdout+stderr).
    pub fn config_test(b: ApacheBuilder) -> (bool, String) {
        b.check_module();
        let port = free_port();
        let conf = b.write_config(port);
        let out = b
            .command(&["-t", "-f", &conf.to_string_lossy()])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("itest: cannot run {APACHE_BIN}: {e}"));
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        if !keep_dirs() {
            let _ = fs::remove_dir_all(&b.dir);
        }
        (out.status.success(), text)
    }

    pub fn start(b: ApacheBuilder) -> Apache {
        b.check_module();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let conf = b.write_config(port);
            let conf_s = conf.to_string_lossy().into_owned();

            // Syntax check first, for a readable failure.
            let out = b
                .command(&["-t", "-f", &conf_s])
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("itest: cannot run {APACHE_BIN}: {e}"));
            if !out.status.success() {
                panic!(
                    "itest: `apache2 -t -f {conf_s}` failed ({}):\n{}{}\n--- config ---\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    read_lossy(&conf)
                );
            }

            for f in ["error.log", "stderr.log", "access.log"] {
                let _ = fs::remove_file(b.dir.join(f));
            }
            let stderr = fs::File::create(b.dir.join("stderr.log")).expect("itest: stderr.log");
            let stdout = stderr.try_clone().unwrap();
            let child = b
                .command(&["-f", &conf_s, "-DFOREGROUND"])
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .process_group(0)
                .spawn()
                .unwrap_or_else(|e| panic!("itest: cannot spawn {APACHE_BIN}: {e}"));
            let pgid = child.id() as i32;
            let mut apache = Apache {
                port,
                dir: b.dir.clone(),
                mpm: b.mpm,
                child,
                watcher: None,
                pgid,
                done: false,
            };
            apache.watcher = spawn_watcher(pgid);

            match apache.wait_ready(b.start_timeout) {
                Ok(()) => return apache,
                Err(why) => {
                    apache.shutdown();
                    apache.done = true; // keep the directory: a retry reuses it
                    let log = apache.error_log();
                    let err = read_lossy(&apache.dir.join("stderr.log"));
                    drop(apache);
                    let in_use = log.contains("Address already in use")
                        || err.contains("Address already in use");
                    if in_use && attempt < 5 {
                        continue; // lost a port race with another process; try another port
                    }
                    panic!(
                        "itest: Apache ({} MPM, port {port}) did not start: {why}\n\
                         dir: {}\n--- error.log ---\n{}\n--- stderr ---\n{}",
                        b.mpm,
                        b.dir.display(),
                        tail(&log, 16 * 1024),
                        tail(&err, 4 * 1024)
                    );
                }
            }
        }
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let addr = self.addr();
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(format!("apache2 exited during startup: {st}"));
            }
            if Instant::now() > deadline {
                return Err(format!("no HTTP response within {timeout:?}"));
            }
            if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                // An HTTP/1.1 request without Host: the core answers 400 while reading the
                // request, before any module hook sees it, so the probe never reaches an app.
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
                let mut c = Conn::from_stream(s);
                c.write(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
                if c.read_response(false).is_ok() {
                    return Ok(());
                }
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("httpd.conf")
    }

    /// Pid of the Apache parent (from the pid file, else the process we spawned).
    pub fn pid(&self) -> i32 {
        read_lossy(&self.dir.join("run/httpd.pid"))
            .trim()
            .parse()
            .unwrap_or(self.child.id() as i32)
    }

    pub fn error_log(&self) -> String {
        read_lossy(&self.dir.join("error.log"))
    }

    pub fn access_log(&self) -> String {
        read_lossy(&self.dir.join("access.log"))
    }

    /// Poll the error log until it contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_log_count(needle, 1, timeout)
    }

    /// Poll the error log until `needle` occurs at least `count` times.
    pub fn wait_log_count(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.error_log().matches(needle).count() >= count {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Panic with a message that includes the tail of the error log.
    pub fn fail(&self, msg: &str) -> ! {
        panic!(
            "{msg}\n[{} MPM, port {}, dir {}]\n--- error.log ---\n{}",
            self.mpm,
            self.port,
            self.dir.display(),
            tail(&self.error_log(), 16 * 1024)
        )
    }

    pub fn signal(&self, sig: i32) {
        if !send_signal(self.pid(), sig) {
            self.fail(&format!("itest: kill({}, {sig}) failed", self.pid()));
        }
    }

    /// Graceful restart (SIGUSR1); returns once the parent logged "resuming normal
    /// operations" again and the port answers.
    pub fn graceful(&self) {
        self.restart_with(SIGUSR1);
    }

    /// Hard restart (SIGHUP), waiting like `graceful`.
    pub fn restart(&self) {
        self.restart_with(SIGHUP);
    }

    fn restart_with(&self, sig: i32) {
        const MARK: &str = "resuming normal operations";
        let before = self.error_log().matches(MARK).count();
        if sig != SIGUSR1 {
            self.settle_connections();
        }
        self.signal(sig);
        if !self.wait_log_count(MARK, before + 1, START_TIMEOUT) {
            self.fail(&format!("itest: no restart completed within {START_TIMEOUT:?} after signal {sig}"));
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(s) = TcpStream::connect_timeout(&self.addr(), Duration::from_millis(500)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let mut c = Conn::from_stream(s);
                c.write(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
                if c.read_response(false).is_ok() {
                    return;
                }
            }
            if Instant::now() > deadline {
                self.fail("itest: server not answering after restart");
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits (up to 1 s) until no connection on the server's port is half closed, then 30 ms
    /// more, before an ungraceful stop or restart: none where the client closed and Apache has
    /// not yet (CLOSE_WAIT), none where Apache closed its side and waits for the client's
    /// (FIN_WAIT1/2). The 30 ms cover Apache's last step after the client's close.
    ///
    /// Apache 2.4's event MPM has a race at ungraceful child shutdown: the main thread aborts
    /// each worker's current socket while a worker may be finishing a lingering close that
    /// frees the same socket's pool; the child then dies of SIGSEGV in `apr_os_sock_get`
    /// (AH00052). It happens with static files alone (about 2 stops in 100 when clients close
    /// connections at the moment of SIGTERM; none once the closes are done). The harness's
    /// requests close their connections just before it stops the server, so it lets Apache
    /// finish those closes first; the crash check then keeps meaning "this module crashed".
    fn settle_connections(&self) {
        let port = format!(":{:04X} ", self.port);
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            // /proc/net/tcp: "sl local rem st ..."; states 04 FIN_WAIT1, 05 FIN_WAIT2 and
            // 08 CLOSE_WAIT.
            let closing = fs::read_to_string("/proc/net/tcp").unwrap_or_default().lines().skip(1).any(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                f.len() > 3 && format!("{} ", f[1]).ends_with(&port) && matches!(f[3], "04" | "05" | "08")
            });
            if !closing || Instant::now() > deadline {
                break;
            }
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(30));
    }

    /// Processes of the server's process group: (pid, ppid, comm, cmdline).
    /// Includes the parent, its children and any daemon processes they forked.
    pub fn processes(&self) -> Vec<ProcInfo> {
        processes_in_group(self.pgid)
    }

    /// Stop the server (SIGTERM, up to 10 s, then SIGKILL the whole process group).
    pub fn stop(mut self) -> Stopped {
        let (clean, status) = self.shutdown();
        let error_log = self.error_log();
        self.done = true;
        let stopped = Stopped { clean, status, error_log };
        self.cleanup_dir();
        stopped
    }

    fn shutdown(&mut self) -> (bool, Option<ExitStatus>) {
        // The watcher first, so it cannot fire on a group id we have reaped.
        if let Some((mut w, stdin)) = self.watcher.take() {
            let _ = w.kill();
            let _ = w.wait();
            drop(stdin);
        }
        let mut clean = true;
        let status;
        if let Ok(Some(st)) = self.child.try_wait() {
            status = Some(st);
        } else {
            self.settle_connections();
            send_signal(self.child.id() as i32, SIGTERM);
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match self.child.try_wait() {
                    Ok(Some(st)) => {
                        status = Some(st);
                        break;
                    }
                    Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                    _ => {
                        clean = false;
                        send_signal(-self.pgid, SIGKILL);
                        status = self.child.wait().ok();
                        break;
                    }
                }
            }
        }
        // Anything left in the group (daemons that outlived the parent, ...).
        let deadline = Instant::now() + Duration::from_secs(2);
        while send_signal(-self.pgid, 0) {
            let live: Vec<ProcInfo> =
                processes_in_group(self.pgid).into_iter().filter(|p| p.state != 'Z').collect();
            if live.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                clean = false;
                send_signal(-self.pgid, SIGKILL);
                break;
            }
            thread::sleep(Duration::from_millis(20));
        }
        (clean, status)
    }

    fn cleanup_dir(&self) {
        if !thread::panicking() && !keep_dirs() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }

    // ---- HTTP ----------------------------------------------------------------------------

    /// New connection to the server (30 s read timeout), for keep-alive / pipelining tests.
    pub fn connect(&self) -> Conn {
        match TcpStream::connect_timeout(&self.addr(), Duration::from_secs(10)) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(READ_TIMEOUT));
                let _ = s.set_write_timeout(Some(READ_TIMEOUT));
                let _ = s.set_nodelay(true);
                Conn::from_stream(s)
            }
            Err(e) => self.fail(&format!("itest: connect to {}: {e}", self.addr())),
        }
    }

    /// Send raw bytes on a fresh connection and read one response. Panics (with the error
    /// log) if no status line arrives.
    pub fn request(&self, raw: &[u8]) -> Response {
        match self.try_request(raw) {
            Ok(r) => r,
            Err(e) => self.fail(&format!(
                "itest: request {:?} failed: {e}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            )),
        }
    }

    /// Like `request` but returns an error instead of panicking when no response arrives.
    pub fn try_request(&self, raw: &[u8]) -> Result<Response, String> {
        let mut c = self.connect();
        c.write(raw);
        c.read_response(is_head(raw))
    }

    /// `GET path` with `Connection: close`.
    pub fn get(&self, path: &str) -> Response {
        self.request(&http_request("GET", path, &[("Connection", "close")], b""))
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut h = headers.to_vec();
        h.push(("Connection", "close"));
        self.request(&http_request("GET", path, &h, b""))
    }

    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Response {
        self.request(&http_request(
            "POST",
            path,
            &[("Content-Type", content_type), ("Connection", "close")],
            body,
        ))
    }
}

impl fmt::Debug for Apache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Apache")
            .field("mpm", &self.mpm)
            .field("port", &self.port)
            .field("dir", &self.dir)
            .field("pid", &self.child.id())
            .finish()
    }
}

impl Drop for Apache {
    fn drop(&mut self) {
        if !self.done {
            self.shutdown();
            self.done = true;
            self.cleanup_dir();
        }
    }
}

fn keep_dirs() -> bool {
    std::env::var_os("MOD_WSGI_ITEST_KEEP").is_some_and(|v| !v.is_empty() && v != "0")
}

/// Kills the server's process group if this test process dies without running Drop: the
/// watcher blocks reading a pipe whose only write end we hold; any exit of ours closes it.
fn spawn_watcher(pgid: i32) -> Option<(Child, ChildStdin)> {
    // Orphaned, the parent may linger as a zombie until init reaps it: poll its state
    // rather than `kill -0`.
    let script = format!(
        "read -r _ 2>/dev/null; \
         kill -TERM {pgid} 2>/dev/null; i=0; \
         while [ $i -lt 50 ]; do \
           st=Z; read -r _ _ st _ < /proc/{pgid}/stat 2>/dev/null; \
           [ \"$st\" = Z ] && break; sleep 0.2; i=$((i+1)); \
         done; \
         kill -KILL -- -{pgid} 2>/dev/null; exit 0"
    );
    let mut child = Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0) // not in the terminal's group: survives Ctrl-C of the test run
        .spawn()
        .ok()?;
    let stdin = child.stdin.take()?;
    Some((child, stdin))
}

#[derive(Clone, Debug)]
pub struct ProcInfo {
    pub pid: i32,
    pub ppid: i32,
    pub state: char,
    /// `/proc/<pid>/comm` (what `display-name` changes show up in, truncated to 15 chars).
    pub comm: String,
    /// `/proc/<pid>/cmdline` with NULs replaced by spaces.
    pub cmdline: String,
}

pub fn processes_in_group(pgid: i32) -> Vec<ProcInfo> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid pgrp ...  -- comm may contain spaces/parens: split at last ')'
        let Some(close) = stat.rfind(')') else { continue };
        let open = stat.find('(').unwrap_or(0);
        let comm = stat[open + 1..close].to_string();
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if rest.len() < 3 {
            continue;
        }
        let state = rest[0].chars().next().unwrap_or('?');
        let ppid = rest[1].parse().unwrap_or(0);
        let pgrp: i32 = rest[2].parse().unwrap_or(0);
        if pgrp != pgid {
            continue;
        }
        let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                String::from_utf8_lossy(&b).replace('\0', " ").trim_end().to_string()
            })
            .unwrap_or_default();
        out.push(ProcInfo { pid, ppid, state, comm, cmdline });
    }
    out.sort_by_key(|p| p.pid);
    out
}

// ---------------------------------------------------------------------------------------------
// HTTP client
// ---------------------------------------------------------------------------------------------

/// Build an HTTP/1.1 request with `Host: localhost`; adds `Content-Length` when a body is
/// given (or for POST/PUT) unless the headers already carry Content-Length/Transfer-Encoding.
pub fn http_request(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("Host") {
        r.push_str("Host: localhost\r\n");
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has("Content-Length")
        && !has("Transfer-Encoding")
        && (!body.is_empty() || method == "POST" || method == "PUT")
    {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut v = r.into_bytes();
    v.extend_from_slice(body);
    v
}

/// Encode `body` as chunks of at most `chunk` bytes, with the terminating 0-chunk.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for part in body.chunks(chunk.max(1)) {
        v.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        v.extend_from_slice(part);
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"0\r\n\r\n");
    v
}

fn is_head(raw: &[u8]) -> bool {
    raw.starts_with(b"HEAD ")
}

#[derive(Clone, Debug, Default)]
pub struct Response {
    /// e.g. "HTTP/1.1"
    pub version: String,
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// Decoded body (chunked framing removed).
    pub body: Vec<u8>,
    /// Transfer-Encoding: chunked was used.
    pub chunked: bool,
    /// Body fully received: Content-Length bytes, the terminating 0-chunk, or EOF for
    /// close-delimited bodies (false on timeout/reset/short read).
    pub complete: bool,
    /// Trailer fields after the last chunk.
    pub trailers: Vec<(String, String)>,
    /// Status codes of interim 1xx responses that preceded this one.
    pub interim: Vec<u16>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn headers_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl fmt::Display for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {} {}", self.version, self.status, self.reason)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        writeln!(f, "[chunked={} complete={} {} body bytes]", self.chunked, self.complete, self.body.len())?;
        let t = self.text();
        write!(f, "{}", if t.len() > 2000 { &t[..t.floor_char_boundary(2000)] } else { &t })
    }
}

/// One client connection; `send` reads exactly one response, so several requests can share
/// it (keep-alive). Bytes the server sent beyond one response stay buffered for the next.
/// Drop it once done: after `Connection: close` Apache lingers (up to ~2 s) reading until the
/// client closes, and under prefork that keeps a whole child busy.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    pub fn from_stream(s: TcpStream) -> Conn {
        Conn { reader: BufReader::with_capacity(64 * 1024, s) }
    }

    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Write raw bytes (errors such as a reset are ignored: the response may still be readable).
    pub fn write(&mut self, raw: &[u8]) {
        let s = self.reader.get_mut();
        let _ = s.write_all(raw);
        let _ = s.flush();
    }

    /// Half-close the sending side.
    pub fn shutdown_write(&mut self) {
        let _ = self.reader.get_ref().shutdown(Shutdown::Write);
    }

    /// Write `raw` and read one response; panics if none arrives.
    pub fn send(&mut self, raw: &[u8]) -> Response {
        self.write(raw);
        match self.read_response(is_head(raw)) {
            Ok(r) => r,
            Err(e) => panic!(
                "itest: no response to {:?}: {e}",
                String::from_utf8_lossy(&raw[..raw.len().min(200)])
            ),
        }
    }

    pub fn try_send(&mut self, raw: &[u8]) -> Result<Response, String> {
        self.write(raw);
        self.read_response(is_head(raw))
    }

    /// True if the server closed the connection (EOF) within `timeout` without sending data.
    pub fn closed_by_peer(&mut self, timeout: Duration) -> bool {
        if !self.reader.buffer().is_empty() {
            return false;
        }
        let s = self.reader.get_ref();
        let _ = s.set_read_timeout(Some(timeout));
        let mut b = [0u8; 1];
        let r = s.peek(&mut b);
        let _ = s.set_read_timeout(Some(READ_TIMEOUT));
        match r {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(e.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
        }
    }

    /// Read everything up to EOF (raw, unparsed).
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut v = Vec::new();
        let _ = self.reader.read_to_end(&mut v);
        v
    }

    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        let n = self.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF"));
        }
        if !line.ends_with(b"\n") {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a line"));
        }
        while line.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            line.pop();
        }
        Ok(line)
    }

    fn read_fields(&mut self) -> io::Result<Vec<(String, String)>> {
        let mut fields = Vec::new();
        loop {
            let line = self.read_line()?;
            if line.is_empty() {
                return Ok(fields);
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            match line.split_once(':') {
                Some((k, v)) => fields.push((k.trim().to_string(), v.trim().to_string())),
                None => fields.push((line.trim().to_string(), String::new())),
            }
        }
    }

    /// Read one response. `head`: the request was HEAD (no body follows).
    pub fn read_response(&mut self, head: bool) -> Result<Response, String> {
        let mut interim = Vec::new();
        loop {
            let line = self.read_line().map_err(|e| format!("reading status line: {e}"))?;
            if line.is_empty() && interim.is_empty() {
                continue; // tolerate a stray CRLF
            }
            let line = String::from_utf8_lossy(&line).into_owned();
            let mut parts = line.splitn(3, ' ');
            let version = parts.next().unwrap_or("").to_string();
            if !version.starts_with("HTTP/") {
                return Err(format!("bad status line {line:?}"));
            }
            let status: u16 = parts
                .next()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad status line {line:?}"))?;
            let reason = parts.next().unwrap_or("").to_string();
            let headers = self.read_fields().map_err(|e| format!("reading headers: {e}"))?;
            if (100..200).contains(&status) && status != 101 {
                interim.push(status);
                continue;
            }
            let mut r = Response {
                version,
                status,
                reason,
                headers,
                interim,
                ..Default::default()
            };
            self.read_body(&mut r, head);
            return Ok(r);
        }
    }

    fn read_body(&mut self, r: &mut Response, head: bool) {
        if head || r.status == 204 || r.status == 304 || r.status == 101 {
            r.complete = true;
            return;
        }
        let te = r.header("Transfer-Encoding").map(|s| s.to_ascii_lowercase());
        if te.as_deref().is_some_and(|t| t.contains("chunked")) {
            r.chunked = true;
            r.complete = self.read_chunked(r).is_ok();
            return;
        }
        if let Some(cl) = r.header("Content-Length") {
            let n: usize = cl.trim().parse().unwrap_or(0);
            let mut body = Vec::with_capacity(n.min(64 << 20));
            let _ = (&mut self.reader).take(n as u64).read_to_end(&mut body);
            r.complete = body.len() == n;
            r.body = body;
            return;
        }
        let mut body = Vec::new();
        r.complete = self.reader.read_to_end(&mut body).is_ok();
        r.body = body;
    }

    fn read_chunked(&mut self, r: &mut Response) -> io::Result<()> {
        loop {
            let line = self.read_line()?;
            let line = String::from_utf8_lossy(&line).into_owned();
            let size_s = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_s, 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("bad chunk size {line:?}")))?;
            if size == 0 {
                r.trailers = self.read_fields()?;
                return Ok(());
            }
            let got = (&mut self.reader).take(size as u64).read_to_end(&mut r.body)?;
            if got < size {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF inside a chunk"));
            }
            let crlf = self.read_line()?;
            if !crlf.is_empty() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "missing CRLF after chunk"));
            }
        }
    }
}

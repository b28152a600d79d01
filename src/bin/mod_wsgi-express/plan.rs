//! From the options to a checked plan: every path resolved, every mistake reported as one line
//! before Apache starts (missing files, a busy port, an application that does not load, a
//! virtualenv of another Python, no usable user when run as root).

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::args::{AppType, Options};
use crate::{os, sys};

pub const APACHE_BIN: &str = "/usr/sbin/apache2";
pub const APACHE_MODULES: &str = "/usr/lib/apache2/modules";
/// The module's name when installed from the Debian package (Debian's own is mod_wsgi.so).
pub const INSTALLED_MODULE: &str = "/usr/lib/apache2/modules/mod_wsgi_rs.so";
/// The Python the module was built against (build.rs sets it; Debian's by default).
pub const SYSTEM_PYTHON: &str = match option_env!("WSGI_PYTHON_EXECUTABLE") {
    Some(p) => p,
    None => "/usr/bin/python3",
};
/// How long loading the application may take in the check before start-up.
const CHECK_TIMEOUT: Duration = Duration::from_secs(60);

/// The user and group Apache's children and the daemon processes switch to (run as root).
#[derive(Clone, Debug)]
pub struct RunAs {
    pub user: os::User,
    pub group: String,
    pub gid: u32,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub opts: Options,
    /// The Apache module (`.so`) to load.
    pub module: PathBuf,
    /// `MAJOR.MINOR` of the Python the module links.
    pub python_version: String,
    pub server_root: PathBuf,
    /// The user's script, or (module type) the generated one in the server root.
    pub script: PathBuf,
    /// `(module, callable)` for `--application-type module`.
    pub module_entry: Option<(String, String)>,
    /// The name mod_wsgi calls in `script`.
    pub callable: String,
    pub run_as: Option<RunAs>,
    pub venv: Option<PathBuf>,
    /// The interpreter the application is checked with (the venv's, or the system one).
    pub python: PathBuf,
    pub working_dir: PathBuf,
    pub python_paths: Vec<PathBuf>,
    pub document_root: Option<PathBuf>,
    /// URL, path, path is a directory.
    pub url_aliases: Vec<(String, PathBuf, bool)>,
    pub log_directory: Option<PathBuf>,
    pub locale: String,
    /// The `Listen` argument.
    pub listen: String,
    pub url: String,
    /// The daemon process group's name.
    pub group_name: String,
    pub warnings: Vec<String>,
}

impl Plan {
    /// A short description of the application for progress lines.
    pub fn app_description(&self) -> String {
        match &self.module_entry {
            Some((m, c)) => format!("module {m}:{c}"),
            None => self.script.display().to_string(),
        }
    }
}

/// The module next to this program (a cargo build), else the installed one.
pub fn find_module() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell where this program is ({e}); reinstall it"))?;
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    // In target/release, cargo's own output first: cargo replaces it with a new file on every
    // build, whereas the mod_wsgi.so copy made by scripts/setup.sh is rewritten in place, which
    // would change the code under a running Apache.
    for name in ["libmod_wsgi.so", "mod_wsgi.so"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    for p in [dir.join("../lib/apache2/modules/mod_wsgi_rs.so"), PathBuf::from(INSTALLED_MODULE)] {
        if p.is_file() {
            return Ok(fs::canonicalize(&p).unwrap_or(p));
        }
    }
    Err(format!(
        "cannot find the mod_wsgi module next to {} nor at {INSTALLED_MODULE}; build it with 'cargo build --release' or install the libapache2-mod-wsgi-rs package",
        exe.display()
    ))
}

/// `MAJOR.MINOR` of the libpython the module links, read from its dynamic section's names.
pub fn module_python_version(module: &Path) -> Option<String> {
    let mut bytes = Vec::new();
    fs::File::open(module).ok()?.read_to_end(&mut bytes).ok()?;
    let needle = b"libpython3.";
    let at = bytes.windows(needle.len()).position(|w| w == needle)?;
    let digits: String = bytes[at + needle.len()..].iter().take(4).take_while(|b| b.is_ascii_digit()).map(|b| *b as char).collect();
    (!digits.is_empty()).then(|| format!("3.{digits}"))
}

/// The virtualenv to use: --python-home, else an active one ($VIRTUAL_ENV).
pub fn chosen_venv(opts_home: Option<&Path>) -> Result<Option<PathBuf>, String> {
    if let Some(h) = opts_home {
        let abs = absolute(h);
        if !abs.is_dir() {
            return Err(format!("--python-home {} is not a directory; give the virtualenv's top directory (the one with pyvenv.cfg)", h.display()));
        }
        return Ok(Some(fs::canonicalize(&abs).unwrap_or(abs)));
    }
    match std::env::var_os("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        Some(v) => {
            let p = PathBuf::from(&v);
            if !p.is_dir() {
                return Err(format!(
                    "VIRTUAL_ENV={} is set but is not a directory; run 'deactivate' or pass --python-home with a virtualenv",
                    p.display()
                ));
            }
            Ok(Some(fs::canonicalize(&p).unwrap_or(p)))
        }
        None => Ok(None),
    }
}

/// Checks that `venv` is for Python `want` (`MAJOR.MINOR`); returns its interpreter.
pub fn check_venv(venv: &Path, want: &str) -> Result<PathBuf, String> {
    let cfg = venv.join("pyvenv.cfg");
    match fs::read_to_string(&cfg) {
        Ok(text) => {
            let mut keys = BTreeMap::new();
            for line in text.lines() {
                if let Some((k, v)) = line.split_once('=') {
                    keys.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let version = keys.get("version").or_else(|| keys.get("version_info")).cloned().unwrap_or_default();
            let mm: Vec<&str> = version.split('.').take(2).collect();
            let have = mm.join(".");
            if mm.len() < 2 {
                return Err(format!(
                    "{} names no Python version; recreate the virtualenv with {SYSTEM_PYTHON} -m venv {}",
                    cfg.display(),
                    venv.display()
                ));
            }
            if have != want {
                return Err(format!(
                    "the virtualenv {} is for Python {have} but this mod_wsgi runs Python {want}; recreate it with {SYSTEM_PYTHON} -m venv {}",
                    venv.display(),
                    venv.display()
                ));
            }
            let py = venv.join("bin/python");
            if !py.exists() {
                return Err(format!("the virtualenv {} has no bin/python; recreate it with {SYSTEM_PYTHON} -m venv {}", venv.display(), venv.display()));
            }
            Ok(py)
        }
        Err(_) => {
            // Not a virtualenv: a Python installation prefix is fine if it is the same version.
            if venv.join(format!("lib/python{want}")).is_dir() {
                let py = venv.join(format!("bin/python{want}"));
                Ok(if py.exists() { py } else { PathBuf::from(SYSTEM_PYTHON) })
            } else {
                Err(format!(
                    "{} is neither a virtualenv (no pyvenv.cfg) nor a Python {want} installation (no lib/python{want}); make one with {SYSTEM_PYTHON} -m venv DIR",
                    venv.display()
                ))
            }
        }
    }
}

pub fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(p)).unwrap_or_else(|_| p.to_path_buf())
    }
}

fn existing_dir(what: &str, p: &Path) -> Result<PathBuf, String> {
    let abs = absolute(p);
    match fs::metadata(&abs) {
        Ok(m) if m.is_dir() => Ok(fs::canonicalize(&abs).unwrap_or(abs)),
        Ok(_) => Err(format!("{what} {} is not a directory", p.display())),
        Err(e) => Err(format!("{what} {} does not exist ({e})", p.display())),
    }
}

fn is_identifier_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|part| {
            let mut chars = part.chars();
            matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
                && chars.all(|c| c == '_' || c.is_alphanumeric())
        })
}

/// A value written into the configuration or a generated script: refuses what would break it.
fn safe_text(what: &str, s: &str) -> Result<(), String> {
    if s.contains('\n') || s.contains('\r') || s.contains('\0') {
        return Err(format!("{what} {s:?} contains a line break; rename it"));
    }
    Ok(())
}

/// Listen address, URL host and address to test-bind.
fn listen_of(host: &str, port: u16) -> Result<(String, String, Vec<SocketAddr>), String> {
    let h = host.trim().trim_start_matches('[').trim_end_matches(']');
    if h.is_empty() || h == "*" || h == "0.0.0.0" || h == "::" {
        let binds = vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))];
        return Ok((port.to_string(), format!("http://localhost:{port}/"), binds));
    }
    if let Ok(ip) = h.parse::<IpAddr>() {
        let (listen, url_host) = match ip {
            IpAddr::V4(_) => (format!("{ip}:{port}"), ip.to_string()),
            IpAddr::V6(_) => (format!("[{ip}]:{port}"), format!("[{ip}]")),
        };
        return Ok((listen, format!("http://{url_host}:{port}/"), vec![SocketAddr::new(ip, port)]));
    }
    let binds: Vec<SocketAddr> = (h, port)
        .to_socket_addrs()
        .map_err(|e| format!("--host {host} is not an address this machine can resolve ({e}); give an IP address such as 127.0.0.1"))?
        .collect();
    if binds.is_empty() {
        return Err(format!("--host {host} resolves to no address; give an IP address such as 127.0.0.1"));
    }
    Ok((format!("{h}:{port}"), format!("http://{h}:{port}/"), binds))
}

/// Fails with one line when the port cannot be listened on.
fn check_port(host: &str, port: u16, binds: &[SocketAddr]) -> Result<(), String> {
    for addr in binds {
        if let Err(e) = TcpListener::bind(addr) {
            let on = if addr.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED) || addr.ip() == IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
                String::from("on every interface")
            } else {
                format!("on {}", addr.ip())
            };
            return Err(match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "port {port} {on} is already in use; stop whatever listens there or choose another port with --port"
                ),
                std::io::ErrorKind::PermissionDenied => format!(
                    "not allowed to listen on port {port} {on} (ports below 1024 need root); choose a port above 1023 with --port"
                ),
                std::io::ErrorKind::AddrNotAvailable => format!(
                    "--host {host} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its interfaces' addresses"
                ),
                _ => format!("cannot listen on port {port} {on}: {e}; choose another with --port or --host"),
            });
        }
    }
    Ok(())
}

fn locale_from_env() -> String {
    for k in ["LC_ALL", "LANG"] {
        if let Ok(v) = std::env::var(k).map(|v| v.trim().to_string()) && !v.is_empty() && v != "C" && v != "POSIX" {
            return v;
        }
    }
    "C.UTF-8".into()
}

/// The user and group to run as when root: --user (default www-data), --group (default its
/// primary group).
fn run_as(user: Option<&str>, group: Option<&str>) -> Result<Option<RunAs>, String> {
    let euid = sys::process::euid();
    if euid != 0 {
        // Naming the user (or group) this program runs as already is fine.
        if let Some(u) = user.filter(|u| os::user_by_name(u).is_none_or(|found| found.uid != euid)) {
            return Err(format!(
                "--user {u} needs root (only root can switch users); leave out --user to run as {}, or run as root",
                os::current_user()
            ));
        }
        if let Some(g) = group.filter(|g| os::group_by_name(g) != Some(sys::process::egid())) {
            return Err(format!("--group {g} needs root (only root can switch groups); leave out --group, or run as root"));
        }
        return Ok(None);
    }
    let name = user.unwrap_or("www-data");
    let Some(u) = os::user_by_name(name) else {
        return Err(format!(
            "running as root needs an unprivileged user for Apache and the application, but user '{name}' does not exist; pass --user with an existing one, e.g. --user www-data"
        ));
    };
    if u.uid == 0 {
        return Err(format!(
            "running as root, the application must not run as root too (--user {name}); pass an unprivileged user, e.g. --user www-data"
        ));
    }
    let (group, gid) = match group {
        Some(g) => match os::group_by_name(g) {
            Some(gid) => (g.to_string(), gid),
            None => return Err(format!("group '{g}' does not exist; pass an existing group with --group, e.g. --group www-data")),
        },
        None => (os::group_name(u.gid), u.gid),
    };
    Ok(Some(RunAs { user: u, group, gid }))
}

/// Builds the plan, checking everything that can be checked before Apache starts.
pub fn resolve(mut opts: Options) -> Result<Plan, String> {
    if !Path::new(APACHE_BIN).is_file() {
        return Err(format!("Apache httpd is not installed ({APACHE_BIN} is missing); install it with 'apt-get install apache2'"));
    }
    let mpm_so = Path::new(APACHE_MODULES).join(format!("mod_mpm_{}.so", opts.mpm.name()));
    if !mpm_so.is_file() {
        return Err(format!("Apache's {} MPM is not installed ({} is missing); install apache2-bin or choose another --mpm", opts.mpm.name(), mpm_so.display()));
    }
    let module = find_module()?;
    let python_version = module_python_version(&module).unwrap_or_else(|| "3.11".into());

    if opts.embedded_mode && opts.reload_on_changes {
        return Err(
            "--reload-on-changes restarts daemon processes, and --embedded-mode runs none; leave out one of them".into(),
        );
    }
    safe_text("--application-group", &opts.application_group)?;
    if opts.application_group.is_empty() {
        return Err("--application-group needs a name, e.g. --application-group %{GLOBAL}".into());
    }
    let working_dir = match &opts.working_directory {
        Some(w) => existing_dir("--working-directory", w)?,
        None => {
            let cwd = std::env::current_dir().map_err(|e| format!("the current directory is not usable ({e}); cd elsewhere or pass --working-directory"))?;
            fs::canonicalize(&cwd).unwrap_or(cwd)
        }
    };
    let mut python_paths = Vec::new();
    for p in &opts.python_paths {
        python_paths.push(existing_dir("--python-path", p)?);
    }

    // The application.
    let Some(entry) = opts.entry.clone() else {
        return Err(
            "no application given; pass a WSGI script (start-server app.wsgi) or a module (start-server --application-type module myapp.wsgi:application)"
                .into(),
        );
    };
    let (script, module_entry, callable) = match opts.app_type {
        AppType::Script => {
            let p = absolute(Path::new(&entry));
            match fs::metadata(&p) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(format!("the WSGI script {entry} is not a file; give the path of the .wsgi/.py file that defines application")),
                Err(_) => return Err(format!("the WSGI script {entry} does not exist; give the path of the .wsgi/.py file that defines application")),
            }
            let p = fs::canonicalize(&p).unwrap_or(p);
            safe_text("the WSGI script path", &p.to_string_lossy())?;
            (p, None, opts.callable.clone().unwrap_or_else(|| "application".into()))
        }
        AppType::Module => {
            let (m, c) = match entry.split_once(':') {
                Some((m, c)) => (m.to_string(), c.to_string()),
                None => (entry.clone(), opts.callable.clone().unwrap_or_else(|| "application".into())),
            };
            if !is_identifier_path(&m) {
                return Err(format!("'{m}' is not a Python module name; write e.g. --application-type module mysite.wsgi"));
            }
            if !is_identifier_path(&c) || c.contains('.') {
                return Err(format!("'{c}' is not a Python name for the WSGI callable; write e.g. {m}:application"));
            }
            // The generated script lives in the server root; its path is fixed below.
            (PathBuf::new(), Some((m, c)), "application".to_string())
        }
    };
    if !is_identifier_path(&callable) || callable.contains('.') {
        return Err(format!("--callable-object {callable} is not a Python name; write e.g. --callable-object app"));
    }

    let run_as = run_as(opts.user.as_deref(), opts.group.as_deref())?;

    let venv = chosen_venv(opts.python_home.as_deref())?;
    let python = match &venv {
        Some(v) => check_venv(v, &python_version)?,
        None => PathBuf::from(SYSTEM_PYTHON),
    };

    let document_root = match &opts.document_root {
        Some(d) => Some(existing_dir("--document-root", d)?),
        None => None,
    };
    let mut url_aliases = Vec::new();
    for (url, path) in &opts.url_aliases {
        let abs = absolute(path);
        let md = fs::metadata(&abs).map_err(|_| {
            format!("--url-alias {url} {}: {} does not exist; give an existing file or directory", path.display(), abs.display())
        })?;
        safe_text("--url-alias", url)?;
        let abs = fs::canonicalize(&abs).unwrap_or(abs);
        url_aliases.push((url.trim_end_matches('/').to_string(), abs, md.is_dir()));
    }
    let log_directory = match &opts.log_directory {
        Some(d) => Some(existing_dir("--log-directory", d)?),
        None => None,
    };

    let (listen, url, binds) = listen_of(&opts.host, opts.port)?;
    if !opts.setup_only {
        check_port(&opts.host, opts.port, &binds)?;
    }

    let server_root = match &opts.server_root {
        Some(r) => absolute(r),
        None => std::env::temp_dir().join(format!("mod_wsgi-express-rs.{}.{}", opts.port, sys::process::euid())),
    };
    // Both go into python-path=, where ':' separates entries.
    for p in std::iter::once(&working_dir).chain(python_paths.iter()) {
        if p.to_string_lossy().contains(':') {
            return Err(format!(
                "{} contains ':', which separates sys.path entries in python-path=; rename it or use another --working-directory / --python-path",
                p.display()
            ));
        }
    }
    let script = if module_entry.is_some() { server_root.join("application.wsgi") } else { script };
    // Apache reopens /dev/stderr (and /dev/stdout) by name: that fails when they belong to
    // another user (e.g. a file root redirected them to before switching users).
    let mut warnings = Vec::new();
    let mut log_directory = log_directory;
    if log_directory.is_none() {
        let mut streams = vec!["/dev/stderr"];
        if opts.access_log {
            streams.push("/dev/stdout");
        }
        for stream in streams {
            if let Err(e) = fs::OpenOptions::new().append(true).open(stream) {
                warnings.push(format!(
                    "Apache cannot reopen {stream} ({e}); logging to files in {} instead (choose with --log-directory)",
                    server_root.display()
                ));
                log_directory = Some(server_root.clone());
                break;
            }
        }
    }

    let mut plan = Plan {
        module,
        python_version,
        server_root,
        script,
        module_entry,
        callable,
        run_as,
        venv,
        python,
        working_dir,
        python_paths,
        document_root,
        url_aliases,
        log_directory,
        locale: locale_from_env(),
        listen,
        url,
        group_name: format!("localhost:{}", opts.port),
        warnings: Vec::new(),
        opts: {
            opts.entry = Some(entry);
            opts
        },
    };
    warnings.extend(readability_warnings(&plan));
    plan.warnings = warnings;
    check_application(&plan)?;
    Ok(plan)
}

/// One line per path the run-as user cannot reach, naming what needs it.
fn readability_warnings(plan: &Plan) -> Vec<String> {
    let Some(ra) = &plan.run_as else { return Vec::new() };
    let gids = os::groups_of(&ra.user.name, ra.gid);
    let mut needs: Vec<(String, PathBuf)> = Vec::new();
    match &plan.module_entry {
        None => needs.push(("the WSGI script".into(), plan.script.clone())),
        Some((m, _)) => needs.push((format!("the working directory (to import {m})"), plan.working_dir.clone())),
    }
    if plan.module_entry.is_none() {
        needs.push(("the working directory".into(), plan.working_dir.clone()));
    }
    for p in &plan.python_paths {
        needs.push(("--python-path".into(), p.clone()));
    }
    if let Some(v) = &plan.venv {
        needs.push(("the virtualenv".into(), v.clone()));
    }
    if let Some(d) = &plan.document_root {
        needs.push(("--document-root".into(), d.clone()));
    }
    for (url, p, _) in &plan.url_aliases {
        needs.push((format!("--url-alias {url}"), p.clone()));
    }
    if let Some(parent) = plan.server_root.parent() {
        needs.push(("the server root".into(), parent.to_path_buf()));
    }
    // Group by the path that blocks, so one unreadable home directory gives one line.
    let mut blocked: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for (what, path) in needs {
        if let Some(block) = os::inaccessible_to(&path, ra.user.uid, &gids) {
            let entry = blocked.entry(block).or_default();
            let item = format!("{what} {}", path.display());
            if !entry.contains(&item) {
                entry.push(item);
            }
        }
    }
    blocked
        .into_iter()
        .map(|(block, items)| {
            let is_dir = fs::metadata(&block).map(|m| m.is_dir()).unwrap_or(false);
            let fix = if items.iter().any(|i| i.ends_with(&*block.to_string_lossy())) {
                if is_dir { format!("chmod -R o+rX {}", block.display()) } else { format!("chmod o+r {}", block.display()) }
            } else {
                format!("chmod o+x {}", block.display())
            };
            format!(
                "user {} cannot read {}, needed for {}; the application will fail until it can (e.g. {fix})",
                ra.user.name,
                block.display(),
                items.join(", ")
            )
        })
        .collect()
}

/// The Python program that loads the application the way mod_wsgi will and reports one line on
/// stdout: OK, MISSING, NOTCALLABLE TYPE, or ERR MESSAGE. The application's own output goes to
/// stderr.
const CHECK_PY: &str = r#"
import os, sys, traceback
kind, target, name = sys.argv[1:4]
if sys.path and sys.path[0] == '':
    del sys.path[0]
sys.path[:0] = sys.argv[4:]
out = sys.stdout
sys.stdout = sys.stderr
def done(line):
    out.write(line + '\n')
    out.flush()
    os._exit(0)
try:
    if kind == 'script':
        import types
        mod = types.ModuleType('_mod_wsgi_express_check')
        mod.__file__ = target
        sys.modules[mod.__name__] = mod
        with open(target, 'rb') as f:
            source = f.read()
        exec(compile(source, target, 'exec'), mod.__dict__)
        found, obj = name in mod.__dict__, mod.__dict__.get(name)
    else:
        import importlib
        mod = importlib.import_module(target)
        found, obj = hasattr(mod, name), getattr(mod, name, None)
except SystemExit as e:
    done('ERR the code called sys.exit(%r) while loading' % (e.code,))
except BaseException as e:
    text = str(e).strip().splitlines()
    msg = type(e).__name__ + (': ' + text[0] if text else '')
    if isinstance(e, SyntaxError) and e.filename:
        msg = 'SyntaxError: %s (%s, line %s)' % (e.msg, e.filename, e.lineno)
    else:
        frames = traceback.extract_tb(e.__traceback__)
        if frames:
            msg += ' (%s, line %s)' % (frames[-1].filename, frames[-1].lineno)
    done('ERR ' + msg)
if not found:
    done('MISSING')
if not callable(obj):
    done('NOTCALLABLE ' + type(obj).__name__)
done('OK')
"#;

/// Loads the application with the interpreter it will run under, from the working directory
/// and with the same sys.path additions, and fails with one line if it cannot be served.
pub fn check_application(plan: &Plan) -> Result<(), String> {
    let (kind, target, name) = match &plan.module_entry {
        Some((m, c)) => ("module", m.clone(), c.clone()),
        None => ("script", plan.script.to_string_lossy().into_owned(), plan.callable.clone()),
    };
    let mut cmd = Command::new(&plan.python);
    cmd.arg("-c").arg(CHECK_PY).arg(kind).arg(&target).arg(&name);
    cmd.arg(&plan.working_dir);
    cmd.args(&plan.python_paths);
    cmd.current_dir(&plan.working_dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("PYTHONHOME")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| format!("cannot run {} to check the application: {e}", plan.python.display()))?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(o) = stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        if let Some(e) = stderr.as_mut() {
            let _ = e.read_to_end(&mut v);
        }
        v
    });
    let deadline = Instant::now() + CHECK_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let what = match kind {
        "module" => format!("module {target}"),
        _ => target.clone(),
    };
    if status.is_none() {
        return Err(format!(
            "loading {what} took longer than {}s in the start-up check; make importing it quick (start servers or loops on first request, not at import)",
            CHECK_TIMEOUT.as_secs()
        ));
    }
    let out = out_t.join().unwrap_or_default();
    let err = err_t.join().unwrap_or_default();
    let line = out.lines().last().unwrap_or("").trim().to_string();
    let python = plan.python.display();
    match line.split_once(' ').map(|(a, b)| (a, b.to_string())).unwrap_or((line.as_str(), String::new())) {
        ("OK", _) => Ok(()),
        ("MISSING", _) => Err(match kind {
            "module" => format!("module {target} has no '{name}'; name the WSGI callable as {target}:CALLABLE"),
            _ => format!(
                "{target} defines no '{name}', the WSGI callable mod_wsgi calls; define application in it or pass --callable-object NAME"
            ),
        }),
        ("NOTCALLABLE", ty) => Err(format!("'{name}' in {what} is a {ty}, not a callable; it must be the WSGI application")),
        ("ERR", msg) => Err(format!("{what} fails to load with {python}: {msg}")),
        _ => {
            let err = String::from_utf8_lossy(&err);
            let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim().to_string();
            Err(format!("{python} could not check {what}: {last}"))
        }
    }
}

/// Owner uid of a path, for the server root's safety check.
pub fn owner_of(p: &Path) -> Option<u32> {
    fs::symlink_metadata(p).ok().map(|m| m.uid())
}

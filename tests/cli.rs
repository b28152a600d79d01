//! mod_wsgi-express (src/bin/mod_wsgi-express): the real program, running Debian's Apache with
//! this module on a free port, talked to over HTTP.
//!
//! * start-server serves a hello-world script, a module, and a Flask application in a
//!   virtualenv; --url-alias, --document-root and --mount-point; --reload-on-changes picks up an
//!   edited module with every request answered; SIGTERM and SIGINT leave no process of the
//!   server's session behind.
//! * Bad input (a missing script, no `application`, an import error, a busy port, a virtualenv
//!   of another Python, no usable --user ...) gives one error line and exit status 1 before
//!   Apache starts.
//! * setup-server writes a server root whose apachectl starts and stops Apache.
//! * module-config's lines load the module in an Apache of the test harness.
//! * scripts/build-deb.sh builds the package; as root it is installed, enabled with a2enmod
//!   (which refuses it while Debian's mod_wsgi is enabled), checked with apache2ctl -t and
//!   removed, and the system's module state is put back as it was even if the test fails.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::fs;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const CLI: &str = env!("CARGO_BIN_EXE_mod_wsgi-express");

unsafe extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
    fn prctl(option: i32, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> i32;
}
const SIGINT: i32 = 2;
const PR_SET_PDEATHSIG: i32 = 1;

fn signal(pid: i32, sig: i32) -> bool {
    // SAFETY: plain syscall wrapper.
    unsafe { kill(pid, sig) == 0 }
}

// ---------------------------------------------------------------------------------------------
// Directories and files
// ---------------------------------------------------------------------------------------------

static N: AtomicUsize = AtomicUsize::new(0);

fn add_bits(path: &Path, bits: u32) {
    if let Ok(md) = fs::metadata(path) {
        let mode = md.permissions().mode() & 0o7777;
        if mode & bits != bits {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | bits));
        }
    }
}

/// A fresh directory under target/itest/ that the server user can read, for one test.
struct TestDir(PathBuf);

impl TestDir {
    fn new(name: &str) -> TestDir {
        let root = manifest_dir().join("target").join("itest");
        fs::create_dir_all(&root).unwrap();
        let root = fs::canonicalize(&root).unwrap();
        let mut cur = Some(root.as_path());
        while let Some(p) = cur {
            if p == Path::new("/") {
                break;
            }
            add_bits(p, 0o005);
            cur = p.parent();
        }
        let dir = root.join(format!("cli-{name}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir(&dir).unwrap();
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        TestDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, p: &str) -> PathBuf {
        self.0.join(p)
    }

    /// Writes `rel` (creating its folders), readable by everyone.
    fn write(&self, rel: &str, text: &str) -> PathBuf {
        let p = self.0.join(rel);
        let parent = p.parent().unwrap();
        fs::create_dir_all(parent).unwrap();
        let mut d = Some(parent);
        while let Some(x) = d {
            if x == self.0.parent().unwrap() {
                break;
            }
            add_bits(x, 0o755);
            d = x.parent();
        }
        fs::write(&p, text).unwrap();
        add_bits(&p, 0o644);
        p
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if !std::thread::panicking() && std::env::var_os("MOD_WSGI_ITEST_KEEP").is_none() {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
}

const HELLO: &str = "def application(environ, start_response):\n    b = b'Hello World!'\n    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])\n    return [b]\n";

// ---------------------------------------------------------------------------------------------
// HTTP and processes
// ---------------------------------------------------------------------------------------------

fn try_get(port: u16, path: &str) -> Result<Response, String> {
    let s = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5)).map_err(|e| e.to_string())?;
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let mut c = Conn::from_stream(s);
    c.write(&http_request("GET", path, &[("Connection", "close")], b""));
    c.read_response(false)
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(500)).is_ok()
}

#[derive(Debug)]
struct Proc {
    pid: i32,
    uid: u32,
    cmdline: String,
}

/// Live processes of session `sid` (Apache makes it; daemon managers make process groups of
/// their own inside it, so the session is what holds everything the server started).
fn session(sid: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        let Some(close) = stat.rfind(')') else { continue };
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if rest.len() < 4 || rest[3].parse::<i32>().ok() != Some(sid) || rest[0] == "Z" || rest[0] == "X" {
            continue;
        }
        let uid = fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
            .unwrap_or(u32::MAX);
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).map(|b| String::from_utf8_lossy(&b).replace('\0', " ").trim().to_string()).unwrap_or_default();
        out.push(Proc { pid, uid, cmdline });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The program
// ---------------------------------------------------------------------------------------------

fn cli(args: &[&str]) -> Command {
    let mut c = Command::new(CLI);
    c.args(args);
    c.env_remove("VIRTUAL_ENV");
    c.env_remove("PYTHONHOME");
    c.env_remove("PYTHONPATH");
    c.stdin(Stdio::null());
    c
}

/// Runs the program to completion: (status, stdout, stderr).
fn run(mut c: Command) -> (ExitStatus, String, String) {
    let out = c.output().unwrap_or_else(|e| panic!("cannot run {CLI}: {e}"));
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A running `start-server`, stopped (and everything it started checked gone) on drop.
struct Server {
    child: Child,
    port: u16,
    root: PathBuf,
    out: PathBuf,
    err: PathBuf,
    done: bool,
}

impl Server {
    /// Starts `start-server ARGS --port P --server-root DIR/root` and waits until Apache answers.
    fn start(dir: &TestDir, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_as(dir, args, env, None)
    }

    /// Like `start`, run as user and group `uid` (for root only).
    fn start_as(dir: &TestDir, args: &[&str], env: &[(&str, &str)], uid: Option<u32>) -> Server {
        let port = free_port();
        let given = args.iter().position(|a| *a == "--server-root").and_then(|i| args.get(i + 1));
        let root = given.map(PathBuf::from).unwrap_or_else(|| dir.join("root"));
        let out = dir.join("cli.out");
        let err = dir.join("cli.err");
        let mut c = cli(&["start-server"]);
        c.args(args).args(["--port", &port.to_string()]);
        if given.is_none() {
            c.arg("--server-root").arg(&root);
        }
        c.current_dir(dir.path());
        for (k, v) in env {
            c.env(k, v);
        }
        let (o, e) = (fs::File::create(&out).unwrap(), fs::File::create(&err).unwrap());
        if let Some(uid) = uid {
            for f in [&out, &err] {
                std::os::unix::fs::chown(f, Some(uid), Some(uid)).unwrap();
            }
            c.uid(uid).gid(uid);
        }
        c.stdout(o).stderr(e);
        // SAFETY: prctl only sets this child's parent-death signal: if the test dies, the
        // program gets SIGTERM and stops Apache.
        unsafe {
            c.pre_exec(|| {
                prctl(PR_SET_PDEATHSIG, SIGTERM as u64, 0, 0, 0);
                Ok(())
            });
        }
        let child = c.spawn().unwrap_or_else(|e| panic!("cannot run {CLI}: {e}"));
        let mut s = Server { child, port, root, out, err, done: false };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(st)) = s.child.try_wait() {
                s.done = true;
                panic!("start-server exited early ({st}):\n--- stdout ---\n{}\n--- stderr ---\n{}", s.stdout(), s.stderr());
            }
            if s.stdout().contains("Server URL") && try_get(port, "/").is_ok() {
                return s;
            }
            if Instant::now() > deadline {
                s.fail("Apache did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stdout(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn fail(&self, msg: &str) -> ! {
        panic!("{msg}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.stdout(), self.stderr())
    }

    fn get(&self, path: &str) -> Response {
        try_get(self.port, path).unwrap_or_else(|e| self.fail(&format!("GET {path}: {e}")))
    }

    /// GET until 200 (the daemon may still be loading the application).
    fn get_ok(&self, path: &str) -> Response {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(path);
            if r.status == 200 || Instant::now() > deadline {
                if r.status != 200 {
                    self.fail(&format!("GET {path}: {r}"));
                }
                return r;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn apache_pid(&self) -> i32 {
        let text = fs::read_to_string(self.root.join("httpd.pid")).unwrap_or_default();
        text.trim().parse().unwrap_or_else(|_| self.fail("no httpd.pid in the server root"))
    }

    /// Sends `sig` to the program and waits for it; returns its status and how long it took.
    fn stop_with(&mut self, sig: i32) -> (ExitStatus, Duration) {
        let t = Instant::now();
        signal(self.child.id() as i32, sig);
        let deadline = t + Duration::from_secs(30);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                self.done = true;
                return (st, t.elapsed());
            }
            if Instant::now() > deadline {
                self.fail(&format!("start-server did not exit within 30 s of signal {sig}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops with `sig` and checks: exit status 0, nothing left of Apache's session, port free.
    fn stop_clean(self, sig: i32) {
        self.stop_clean_of(sig, 3, "Apache's parent, a child and a daemon process");
    }

    /// `stop_clean` for a server whose session had at least `min` processes (`what`) running.
    fn stop_clean_of(mut self, sig: i32, min: usize, what: &str) {
        let sid = self.apache_pid();
        let before = session(sid);
        assert!(before.len() >= min, "expected {what} in session {sid}: {before:?}");
        let (st, took) = self.stop_with(sig);
        assert!(st.success(), "start-server exited with {st} after signal {sig}\n{}", self.stderr());
        let left = session(sid);
        assert!(left.is_empty(), "processes of the server left after start-server exited: {left:?}\n{}", self.stderr());
        assert!(!listening(self.port), "port {} still answers after start-server exited", self.port);
        assert!(took < Duration::from_secs(20), "stopping took {took:?}");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let sid = fs::read_to_string(self.root.join("httpd.pid")).ok().and_then(|t| t.trim().parse::<i32>().ok());
        signal(self.child.id() as i32, SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(sid) = sid {
            for p in session(sid) {
                signal(p.pid, SIGKILL);
            }
        }
    }
}

/// The progress line `NAME : VALUE` of stdout.
fn progress(stdout: &str, name: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        let (k, v) = l.split_once(" : ")?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

// ---------------------------------------------------------------------------------------------
// Virtualenv with Flask (the one tests/flask_venv.rs makes, or one made the same way)
// ---------------------------------------------------------------------------------------------

fn flask_venv() -> PathBuf {
    common::venv::flask_venv()
}

// ---------------------------------------------------------------------------------------------
// start-server
// ---------------------------------------------------------------------------------------------

#[test]
fn hello_script_is_served_and_sigterm_leaves_no_process() {
    let dir = TestDir::new("hello");
    let script = dir.write("app/hello.wsgi", HELLO);
    let s = Server::start(&dir, &[script.to_str().unwrap()], &[]);

    let r = s.get_ok("/");
    assert_eq!(r.text(), "Hello World!", "{r}");
    let out = s.stdout();
    assert_eq!(progress(&out, "Server URL").as_deref(), Some(format!("http://127.0.0.1:{}/", s.port).as_str()), "{out}");
    let root = fs::canonicalize(&s.root).unwrap();
    assert_eq!(progress(&out, "Server Root").map(PathBuf::from), Some(root.clone()), "{out}");
    assert_eq!(progress(&out, "Server Conf").map(PathBuf::from), Some(root.join("httpd.conf")), "{out}");
    assert!(progress(&out, "Error Log").is_some_and(|v| v.contains("terminal")), "{out}");
    assert!(root.join("apachectl").is_file());

    // Daemon mode: the application runs in a daemon process (as www-data when root), which
    // sits in Apache's session though in a process group of its own.
    let sid = s.apache_pid();
    let procs = session(sid);
    let daemons: Vec<&Proc> = procs.iter().filter(|p| p.cmdline.contains("(wsgi:")).collect();
    assert!(!daemons.is_empty(), "no daemon process in Apache's session: {procs:?}");
    if is_root() {
        assert!(daemons.iter().all(|p| p.uid == 33), "daemon processes must run as www-data (uid 33): {daemons:?}");
    }
    s.stop_clean(SIGTERM);
}

#[test]
fn without_root_everything_runs_as_the_invoking_user() {
    let dir = TestDir::new("nonroot");
    let script = dir.write("app/hello.wsgi", HELLO);
    // As root the program is started as www-data (uid 33); otherwise as whoever runs the tests.
    let (uid, s) = if is_root() {
        let home = dir.join("home");
        fs::create_dir(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(33), Some(33)).unwrap();
        let s = Server::start_as(&dir, &[script.to_str().unwrap(), "--server-root", home.join("root").to_str().unwrap()], &[], Some(33));
        (33, s)
    } else {
        let uid = fs::metadata(dir.path()).unwrap().uid();
        (uid, Server::start(&dir, &[script.to_str().unwrap()], &[]))
    };
    assert_eq!(s.get_ok("/").text(), "Hello World!");
    assert!(!s.stdout().contains(" as "), "no user switch without root: {}", s.stdout());
    let procs = session(s.apache_pid());
    assert!(procs.len() >= 3 && procs.iter().all(|p| p.uid == uid), "every process must run as uid {uid}: {procs:?}");
    s.stop_clean(SIGTERM);
}

#[test]
fn module_entry_point_mount_point_and_ctrl_c_under_prefork() {
    let dir = TestDir::new("module");
    dir.write(
        "proj/pkg/__init__.py",
        "",
    );
    dir.write(
        "proj/pkg/web.py",
        "import os\n\ndef make(environ, start_response):\n    b = ('%s|%s|%s' % (environ['SCRIPT_NAME'], environ['PATH_INFO'], os.getcwd())).encode()\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b]\n",
    );
    let proj = dir.join("proj");
    let s = Server::start(
        &dir,
        &[
            "--application-type", "module", "pkg.web:make",
            "--working-directory", proj.to_str().unwrap(),
            "--mount-point", "/sub",
            "--mpm", "prefork",
            "--processes", "2",
            "--threads", "2",
        ],
        &[],
    );
    assert!(progress(&s.stdout(), "Server URL").is_some_and(|u| u.ends_with("/sub/")), "{}", s.stdout());
    let r = s.get_ok("/sub/x/y");
    let proj = fs::canonicalize(&proj).unwrap();
    assert_eq!(r.text(), format!("/sub|/x/y|{}", proj.display()), "{r}");
    // Outside the mount point: the (empty) document root.
    assert_eq!(s.get("/elsewhere").status, 404);
    let daemons = session(s.apache_pid()).into_iter().filter(|p| p.cmdline.contains("(wsgi:")).count();
    assert!(daemons >= 3, "a manager and two daemon processes expected, found {daemons}");
    s.stop_clean(SIGINT);
}

#[test]
fn flask_app_in_the_active_virtualenv() {
    let venv = flask_venv();
    let dir = TestDir::new("flask");
    dir.write(
        "site/app.py",
        "import sys\nfrom flask import Flask\n\napp = Flask(__name__)\n\n@app.route('/')\ndef index():\n    return 'hello from flask'\n\n@app.route('/prefix')\ndef prefix():\n    return sys.prefix\n",
    );
    let site = dir.join("site");
    let s = Server::start(
        &dir,
        &["--application-type", "module", "app:app", "--working-directory", site.to_str().unwrap()],
        &[("VIRTUAL_ENV", venv.to_str().unwrap())],
    );
    let r = s.get_ok("/");
    assert_eq!(r.text(), "hello from flask", "{r}");
    let r = s.get_ok("/prefix");
    assert_eq!(r.text(), venv.to_string_lossy(), "the daemon must run in the virtualenv: {r}");
    assert_eq!(s.get("/missing").status, 404, "Flask's own 404");
    assert!(progress(&s.stdout(), "Python").is_some_and(|p| p.contains(&*venv.to_string_lossy())), "{}", s.stdout());
    s.stop_clean(SIGTERM);
}

#[test]
fn url_alias_and_document_root_serve_static_files() {
    let dir = TestDir::new("static");
    let script = dir.write("app/hello.wsgi", HELLO);
    dir.write("assets/site.css", "body { color: red }\n");
    let robots = dir.write("robots.txt", "User-agent: *\n");
    dir.write("docs/page.html", "<p>static page</p>\n");
    let assets = dir.join("assets");
    let docs = dir.join("docs");
    let s = Server::start(
        &dir,
        &[
            script.to_str().unwrap(),
            "--url-alias", "/static", assets.to_str().unwrap(),
            "--url-alias", "/robots.txt", robots.to_str().unwrap(),
            "--document-root", docs.to_str().unwrap(),
        ],
        &[],
    );
    let r = s.get("/static/site.css");
    assert_eq!((r.status, r.text().as_str()), (200, "body { color: red }\n"), "{r}");
    assert_eq!(r.header("Content-Type"), Some("text/css"), "{r}");
    let r = s.get("/robots.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "User-agent: *\n"), "{r}");
    let r = s.get("/page.html");
    assert_eq!((r.status, r.text().as_str()), (200, "<p>static page</p>\n"), "a file in the document root: {r}");
    let r = s.get_ok("/anything/else");
    assert_eq!(r.text(), "Hello World!", "other URLs go to the application: {r}");
    assert_eq!(s.get("/static/none.css").status, 404);
    s.stop_clean(SIGTERM);
}

#[test]
fn reload_on_changes_picks_up_an_edited_module_without_a_failed_request() {
    let dir = TestDir::new("reload");
    let greeting = dir.write("app/greeting.py", "MESSAGE = 'first'\n");
    let script = dir.write(
        "app/app.wsgi",
        "import os, sys\nsys.path.insert(0, os.path.dirname(__file__))\nimport greeting\n\ndef application(environ, start_response):\n    b = greeting.MESSAGE.encode()\n    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])\n    return [b]\n",
    );
    let s = Server::start(&dir, &[script.to_str().unwrap(), "--reload-on-changes", "--threads", "2"], &[]);
    assert_eq!(s.get_ok("/").text(), "first");

    // Poll from another thread while the module is edited (a new file renamed over the old one,
    // as editors save); every answer must be 200, first the old text, then the new.
    let port = s.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let poller = std::thread::spawn(move || {
        let mut seen = Vec::new();
        while !stop2.load(Ordering::SeqCst) {
            match try_get(port, "/") {
                Ok(r) => seen.push((r.status, r.text())),
                Err(e) => seen.push((0, e)),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        seen
    });
    std::thread::sleep(Duration::from_millis(300));
    let tmp = dir.write("app/greeting.py.new", "MESSAGE = 'second, edited'\n");
    fs::rename(&tmp, &greeting).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = s.get("/");
        if r.text() == "second, edited" {
            break;
        }
        assert_eq!(r.status, 200, "{r}");
        if Instant::now() > deadline {
            s.fail("the edit was not picked up within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    let seen = poller.join().unwrap();
    let failed: Vec<_> = seen.iter().filter(|(st, _)| *st != 200).collect();
    assert!(failed.is_empty(), "requests failed while reloading: {failed:?}\n{}", s.stderr());
    assert!(seen.len() > 20, "too few requests made while reloading: {}", seen.len());
    assert_eq!(seen.last().map(|(_, t)| t.as_str()), Some("second, edited"));
    assert!(seen.iter().any(|(_, t)| t == "first"), "the poller never saw the old text");
    assert!(s.stderr().contains("greeting.py changed; restarting daemon process"), "{}", s.stderr());
    s.stop_clean(SIGTERM);
}

/// Parent pid of `pid`, from /proc.
fn parent_of(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn embedded_mode_runs_the_application_in_apache_children() {
    let dir = TestDir::new("embedded");
    dir.write("lib/helper.py", "WHERE = 'helper from the working directory'\n");
    let script = dir.write(
        "app/emb.wsgi",
        "import os, sys\nimport helper\n\ndef application(environ, start_response):\n    b = '|'.join([environ['mod_wsgi.process_group'], environ['mod_wsgi.application_group'], str(os.getpid()), helper.WHERE, os.getcwd()]).encode()\n    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])\n    return [b]\n",
    );
    let lib = fs::canonicalize(dir.join("lib")).unwrap();
    let s = Server::start(
        &dir,
        &[script.to_str().unwrap(), "--embedded-mode", "--working-directory", lib.to_str().unwrap(), "--processes", "2", "--threads", "3"],
        &[],
    );
    let out = s.stdout();
    assert!(
        progress(&out, "Operating Mode").is_some_and(|m| m.starts_with("embedded (2 Apache children x 3 threads, event MPM")),
        "{out}"
    );
    let conf = fs::read_to_string(s.root.join("httpd.conf")).unwrap();
    for absent in ["WSGIDaemonProcess", "WSGIProcessGroup", "WSGIRestrictEmbedded", "process-group=\"localhost"] {
        assert!(!conf.contains(absent), "{absent} in an embedded-mode httpd.conf:\n{conf}");
    }

    // Every answer comes from an Apache child (a child of Apache's parent, as the user Apache
    // switches to when root), never from a daemon process, of which there is none.
    let apache = s.apache_pid();
    let procs = session(apache);
    assert!(procs.iter().all(|p| !p.cmdline.contains("(wsgi:")), "a daemon process in embedded mode: {procs:?}");
    let mut pids = BTreeSet::new();
    for _ in 0..6 {
        let r = s.get_ok("/");
        let text = r.text();
        let f: Vec<&str> = text.split('|').collect();
        assert_eq!(f.len(), 5, "{r}");
        assert_eq!((f[0], f[1]), ("", ""), "mod_wsgi.process_group and application_group in embedded mode: {r}");
        assert_eq!(f[3], "helper from the working directory", "{r}");
        assert_eq!(f[4], lib.to_str().unwrap(), "the working directory of Apache's children: {r}");
        let pid: i32 = f[2].parse().unwrap();
        assert_ne!(pid, apache, "the application ran in Apache's parent");
        assert_eq!(parent_of(pid), Some(apache), "pid {pid} is not a child of Apache ({apache}): {procs:?}");
        let p = procs.iter().find(|p| p.pid == pid).unwrap_or_else(|| s.fail(&format!("pid {pid} is not in Apache's session: {procs:?}")));
        assert!(p.cmdline.starts_with("/usr/sbin/apache2 "), "{p:?}");
        if is_root() {
            assert_eq!(p.uid, 33, "Apache's children run as www-data: {p:?}");
        }
        pids.insert(pid);
    }
    assert!(!pids.is_empty());
    s.stop_clean_of(SIGINT, 3, "Apache's parent and its two children");

    // setup-server writes the same embedded configuration; --reload-on-changes (which restarts
    // daemon processes) is refused with it.
    let root = dir.join("setup-root");
    let mut c = cli(&["setup-server", script.to_str().unwrap(), "--embedded-mode", "--mpm", "prefork", "--maximum-requests", "500", "--server-root"]);
    c.arg(&root).current_dir(&lib);
    let (st, out, err) = run(c);
    assert!(st.success(), "{st}\n{out}\n{err}");
    let conf = fs::read_to_string(root.join("httpd.conf")).unwrap();
    assert!(!conf.contains("WSGIDaemonProcess") && conf.contains("process-group=%{GLOBAL}"), "{conf}");
    assert!(conf.contains("StartServers 5\n") && conf.contains("MaxConnectionsPerChild 500\n"), "prefork: 1 x 5 children:\n{conf}");
    let out = Command::new(root.join("apachectl")).arg("configtest").output().unwrap();
    assert!(out.status.success(), "apachectl configtest: {}", String::from_utf8_lossy(&out.stderr));
    expect_error(&dir, &[script.to_str().unwrap(), "--embedded-mode", "--reload-on-changes"], &[], &["--reload-on-changes", "--embedded-mode"]);
}

// ---------------------------------------------------------------------------------------------
// Bad input: one line, exit status 1, no Apache
// ---------------------------------------------------------------------------------------------

/// Runs `start-server ARGS` (in `dir`, with `--server-root`) expecting one error line
/// containing every needle.
fn expect_error(dir: &TestDir, args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let root = dir.join("root-bad");
    let port = free_port();
    let mut c = cli(&["start-server"]);
    c.args(args).current_dir(dir.path());
    if !args.contains(&"--port") {
        c.args(["--port", &port.to_string()]);
    }
    c.arg("--server-root").arg(&root);
    for (k, v) in env {
        c.env(k, v);
    }
    let t = Instant::now();
    let (st, out, err) = run(c);
    let what = format!("start-server {args:?}: status {st}\n--- stdout ---\n{out}\n--- stderr ---\n{err}");
    assert_eq!(st.code(), Some(1), "{what}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line expected: {what}");
    assert!(lines[0].starts_with("mod_wsgi-express: error: "), "{what}");
    for n in needles {
        assert!(lines[0].contains(n), "{n:?} missing: {what}");
    }
    assert!(out.is_empty(), "nothing on stdout before Apache would start: {what}");
    assert!(!root.join("httpd.pid").exists() && !root.join("httpd.conf").exists(), "no server root written: {what}");
    assert!(t.elapsed() < Duration::from_secs(20), "took {:?}: {what}", t.elapsed());
}

#[test]
fn bad_input_is_one_line_before_apache_starts() {
    let dir = TestDir::new("bad");
    let hello = dir.write("hello.wsgi", HELLO);
    let hello = hello.to_str().unwrap();
    let no_app = dir.write("noapp.wsgi", "app = None\n");
    let not_callable = dir.write("notcallable.wsgi", "application = 42\n");
    let import_error = dir.write("importerror.wsgi", "import no_such_module_here\n");
    let syntax = dir.write("syntax.wsgi", "def application(:\n");
    dir.write("mods/quiet.py", "x = 1\n");
    let mods = dir.join("mods");

    expect_error(&dir, &[dir.join("missing.wsgi").to_str().unwrap()], &[], &["missing.wsgi", "does not exist"]);
    expect_error(&dir, &[no_app.to_str().unwrap()], &[], &["noapp.wsgi", "defines no 'application'", "--callable-object"]);
    expect_error(&dir, &[not_callable.to_str().unwrap()], &[], &["notcallable.wsgi", "is a int, not a callable"]);
    expect_error(&dir, &[import_error.to_str().unwrap()], &[], &["importerror.wsgi", "ModuleNotFoundError", "no_such_module_here", "line 1"]);
    expect_error(&dir, &[syntax.to_str().unwrap()], &[], &["SyntaxError", "syntax.wsgi, line 1"]);
    expect_error(&dir, &[hello, "--callable-object", "app"], &[], &["defines no 'app'"]);
    expect_error(&dir, &["--application-type", "module", "no_such_module_here"], &[], &["module no_such_module_here", "No module named"]);
    expect_error(&dir, &["--application-type", "module", "quiet:app", "--python-path", mods.to_str().unwrap()], &[], &["module quiet has no 'app'"]);
    expect_error(&dir, &["--application-type", "module", "not-a-name"], &[], &["not a Python module name"]);
    expect_error(&dir, &[], &[], &["no application given"]);
    expect_error(&dir, &[hello, "--no-such-option"], &[], &["unknown option '--no-such-option'"]);
    expect_error(&dir, &[hello, "--threads", "0"], &[], &["--threads 0"]);
    expect_error(&dir, &[hello, "--mpm", "winnt"], &[], &["--mpm winnt"]);
    expect_error(&dir, &[hello, "--url-alias", "/s", dir.join("nothing-here").to_str().unwrap()], &[], &["nothing-here", "does not exist"]);

    // A virtualenv of another Python (its pyvenv.cfg says so), given or active.
    dir.write("venv312/pyvenv.cfg", "home = /usr/local/bin\ninclude-system-site-packages = false\nversion = 3.12.1\n");
    let venv312 = dir.join("venv312");
    expect_error(&dir, &[hello, "--python-home", venv312.to_str().unwrap()], &[], &["venv312", "Python 3.12", "Python 3.11", "-m venv"]);
    expect_error(&dir, &[hello], &[("VIRTUAL_ENV", venv312.to_str().unwrap())], &["venv312", "Python 3.12"]);
    expect_error(&dir, &[hello], &[("VIRTUAL_ENV", dir.join("gone").to_str().unwrap())], &["VIRTUAL_ENV", "deactivate"]);

    // The port is taken.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    expect_error(&dir, &[hello, "--port", &port], &[], &[&format!("port {port}"), "already in use", "--port"]);
    drop(taken);

    // Users.
    if is_root() {
        expect_error(&dir, &[hello, "--user", "no-such-user-here"], &[], &["user 'no-such-user-here' does not exist", "--user"]);
        expect_error(&dir, &[hello, "--user", "root"], &[], &["must not run as root", "--user www-data"]);
        expect_error(&dir, &[hello, "--group", "no-such-group-here"], &[], &["group 'no-such-group-here' does not exist"]);
    } else {
        expect_error(&dir, &[hello, "--user", "www-data"], &[], &["--user www-data needs root"]);
    }
}

#[test]
fn unreadable_application_directory_is_named_in_one_warning_when_root() {
    let dir = TestDir::new("unreadable");
    let script = dir.write("private/app/hello.wsgi", HELLO);
    let private = dir.join("private");
    if is_root() {
        // Root can load the application, www-data could not: a warning, and the server is
        // still set up (the administrator may be about to fix the permissions).
        fs::set_permissions(&private, fs::Permissions::from_mode(0o700)).unwrap();
        let mut c = cli(&["setup-server", script.to_str().unwrap(), "--server-root"]);
        c.arg(dir.join("root"));
        let (st, out, err) = run(c);
        assert!(st.success(), "{st}\n{out}\n{err}");
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
        assert_eq!(warnings.len(), 1, "one warning line expected:\n{err}");
        let w = warnings[0];
        let private = fs::canonicalize(&private).unwrap();
        assert!(
            w.starts_with("mod_wsgi-express: warning: user www-data cannot read ")
                && w.contains(&*private.to_string_lossy())
                && w.contains("hello.wsgi")
                && w.contains("chmod"),
            "{w}"
        );
        fs::set_permissions(&private, fs::Permissions::from_mode(0o755)).unwrap();
        let (st, _, err) = run({
            let mut c = cli(&["setup-server", script.to_str().unwrap(), "--server-root"]);
            c.arg(dir.join("root"));
            c
        });
        assert!(st.success() && !err.contains("warning"), "no warning once readable:\n{err}");
    } else {
        // Not root: no user switch, so nothing to warn about; and --user is refused.
        let mut c = cli(&["setup-server", script.to_str().unwrap(), "--server-root"]);
        c.arg(dir.join("root"));
        let (st, _, err) = run(c);
        assert!(st.success() && !err.contains("warning"), "{err}");
        expect_error(&dir, &[script.to_str().unwrap(), "--user", "nobody"], &[], &["needs root"]);
    }
}

// ---------------------------------------------------------------------------------------------
// setup-server and the control script
// ---------------------------------------------------------------------------------------------

#[test]
fn setup_server_writes_a_server_root_its_apachectl_starts_and_stops() {
    let dir = TestDir::new("setup");
    let script = dir.write(
        "app/groups.wsgi",
        "def application(environ, start_response):\n    b = ('%s|%s|%s' % (environ['mod_wsgi.application_group'], environ['mod_wsgi.process_group'], environ.get('APP_MODE'))).encode()\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b]\n",
    );
    let root = dir.join("root");
    let port = free_port();
    let mut c = cli(&[
        "setup-server", script.to_str().unwrap(), "--port", &port.to_string(), "--access-log",
        "--application-group", "mygroup", "--maximum-requests", "1000", "--request-timeout", "30",
        "--interrupt-timeout", "7", "--processes", "2", "--threads", "3", "--mpm", "worker", "--log-level", "info",
        "--server-metrics", "--queue-timeout", "45", "--graceful-timeout", "20", "--socket-timeout", "90",
        "--header-buffer-size", "65536", "--server-name", "app.example.com", "--keep-alive-timeout", "7",
        "--limit-request-body", "1048576", "--setenv", "APP_MODE", "staging", "--map-head-to-get", "Off",
        "--chunked-request", "--log-directory",
    ]);
    c.arg(dir.path()).arg("--server-root").arg(&root);
    let (st, out, err) = run(c);
    assert!(st.success(), "{st}\n{out}\n{err}");
    assert!(progress(&out, "Server Conf").is_some(), "{out}");
    assert!(!listening(port), "setup-server must not start Apache");
    let conf = fs::read_to_string(root.join("httpd.conf")).unwrap();
    for needle in [
        "processes=2 threads=3",
        "maximum-requests=1000 request-timeout=30 interrupt-timeout=7 server-metrics=On queue-timeout=45 graceful-timeout=20 socket-timeout=90 header-buffer-size=65536",
        "WSGIServerMetrics On",
        "ServerName \"app.example.com\"",
        "KeepAliveTimeout 7",
        "LimitRequestBody 1048576",
        "SetEnv \"APP_MODE\" \"staging\"",
        "WSGIMapHEADToGET Off",
        "WSGIChunkedRequest On",
        "application-group=\"mygroup\"",
        "mod_mpm_worker.so",
        "LogLevel info",
    ] {
        assert!(conf.contains(needle), "{needle} missing from httpd.conf:\n{conf}");
    }

    let ctl = root.join("apachectl");
    let out = Command::new(&ctl).arg("configtest").output().unwrap();
    assert!(out.status.success(), "apachectl configtest: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Syntax OK"));

    // `apachectl start` runs Apache in the background; stop it whatever happens below.
    struct Stop(PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new(&self.0).arg("stop").output();
        }
    }
    let out = Command::new(&ctl).arg("start").output().unwrap();
    let _stop = Stop(ctl.clone());
    assert!(out.status.success(), "apachectl start: {}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    let r = loop {
        match try_get(port, "/") {
            Ok(r) if r.status == 200 => break r,
            other if Instant::now() > deadline => panic!("no 200 from apachectl start: {other:?}\n{}", fs::read_to_string(dir.join("error_log")).unwrap_or_default()),
            _ => std::thread::sleep(Duration::from_millis(50)),
        }
    };
    assert_eq!(r.text(), format!("mygroup|localhost:{port}|staging"));
    let pid: i32 = fs::read_to_string(root.join("httpd.pid")).unwrap().trim().parse().unwrap();
    let out = Command::new(&ctl).arg("stop").output().unwrap();
    assert!(out.status.success(), "apachectl stop: {}", String::from_utf8_lossy(&out.stderr));
    let deadline = Instant::now() + Duration::from_secs(20);
    while signal(pid, 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!signal(pid, 0), "Apache {pid} still runs after apachectl stop");
    let access = fs::read_to_string(dir.join("access_log")).unwrap_or_default();
    assert!(access.contains("\"GET / HTTP/1.1\" 200"), "--access-log with --log-directory: {access}");
}

// ---------------------------------------------------------------------------------------------
// module-config / module-location
// ---------------------------------------------------------------------------------------------

#[test]
fn module_config_loads_the_module_in_another_apache() {
    let (st, loc, err) = run(cli(&["module-location"]));
    assert!(st.success(), "{err}");
    let loc = PathBuf::from(loc.trim());
    assert!(loc.is_file(), "module-location printed {}", loc.display());

    let (st, config, err) = run(cli(&["module-config"]));
    assert!(st.success(), "{err}");
    assert_eq!(config, format!("LoadModule wsgi_module \"{}\"\n", loc.display()));

    // The printed line is all an Apache of the test harness needs to serve a script.
    let a = ApacheBuilder::new()
        .without_module()
        .conf(&config)
        .script("hello.wsgi", HELLO)
        .conf("WSGIScriptAlias /hello {dir}/scripts/hello.wsgi\n<Directory {dir}/scripts>\n    Require all granted\n</Directory>")
        .start();
    let r = a.get("/hello");
    assert_eq!((r.status, r.text().as_str()), (200, "Hello World!"), "{r}\n{}", a.error_log());
    let stopped = a.stop();
    assert!(!stopped.has_crash(), "{}", stopped.error_log);

    // With a virtualenv active, WSGIPythonHome names it, and the pair passes apache2 -t.
    let venv = flask_venv();
    let mut c = cli(&["module-config"]);
    c.env("VIRTUAL_ENV", &venv);
    let (st, config, err) = run(c);
    assert!(st.success(), "{err}");
    assert_eq!(config, format!("LoadModule wsgi_module \"{}\"\nWSGIPythonHome \"{}\"\n", loc.display(), venv.display()));
    let (ok, out) = Apache::config_test(ApacheBuilder::new().without_module().conf(&config));
    assert!(ok, "apache2 -t with module-config's lines:\n{out}");
}

// ---------------------------------------------------------------------------------------------
// The Debian package
// ---------------------------------------------------------------------------------------------

fn sh(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd)
        .args(args)
        .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

const PKG: &str = "libapache2-mod-wsgi-rs";
const STATE_DIR: &str = "/var/lib/apache2/module";
const ENABLED_DIR: &str = "/etc/apache2/mods-enabled";

/// Files (relative) under a2enmod's state directory, and the wsgi links in mods-enabled.
fn module_state() -> (BTreeSet<PathBuf>, BTreeSet<PathBuf>, BTreeSet<(String, PathBuf)>) {
    let mut dirs = BTreeSet::new();
    let mut files = BTreeSet::new();
    if let Ok(rd) = fs::read_dir(STATE_DIR) {
        for d in rd.flatten() {
            dirs.insert(PathBuf::from(d.file_name()));
            for f in fs::read_dir(d.path()).into_iter().flatten().flatten() {
                files.insert(PathBuf::from(d.file_name()).join(f.file_name()));
            }
        }
    }
    let mut links = BTreeSet::new();
    for e in fs::read_dir(ENABLED_DIR).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(t) = name.starts_with("wsgi").then(|| fs::read_link(e.path()).ok()).flatten() {
            links.insert((name, t));
        }
    }
    (dirs, files, links)
}

/// Puts the system back as it was: the package gone, the wsgi modules enabled as before,
/// a2enmod's state files as before. Runs on drop, so also after a failed assertion.
struct SystemGuard {
    state: (BTreeSet<PathBuf>, BTreeSet<PathBuf>, BTreeSet<(String, PathBuf)>),
    was_installed: bool,
}

impl SystemGuard {
    fn new() -> SystemGuard {
        let (installed, _) = sh("dpkg-query", &["-W", "-f=${Status}", PKG]);
        SystemGuard { state: module_state(), was_installed: installed }
    }
}

impl Drop for SystemGuard {
    fn drop(&mut self) {
        let _ = sh("a2dismod", &["-q", "-f", "wsgi_rs"]);
        if !self.was_installed {
            let _ = sh("dpkg", &["-P", PKG]);
        }
        let (dirs, files, links) = &self.state;
        let (now_dirs, now_files, now_links) = module_state();
        for (name, _) in now_links.difference(links) {
            let _ = fs::remove_file(Path::new(ENABLED_DIR).join(name));
        }
        for (name, target) in links.difference(&now_links) {
            let _ = std::os::unix::fs::symlink(target, Path::new(ENABLED_DIR).join(name));
        }
        for f in now_files.difference(files) {
            let _ = fs::remove_file(Path::new(STATE_DIR).join(f));
        }
        for f in files.difference(&now_files) {
            let _ = fs::write(Path::new(STATE_DIR).join(f), b"");
        }
        for d in now_dirs.difference(dirs) {
            let _ = fs::remove_dir(Path::new(STATE_DIR).join(d));
        }
        let after = module_state();
        if after != self.state && !std::thread::panicking() {
            panic!("module state not restored: before {:?}, after {after:?}", self.state);
        }
    }
}

#[test]
fn debian_package_builds_installs_enables_and_removes_cleanly() {
    let dir = TestDir::new("deb");
    let script = manifest_dir().join("scripts/build-deb.sh");
    let out_dir = dir.join("out");
    let (ok, text) = sh("bash", &[script.to_str().unwrap(), "--no-build", "--out", out_dir.to_str().unwrap()]);
    assert!(ok, "build-deb.sh failed:\n{text}");
    let deb = PathBuf::from(text.lines().last().unwrap().trim());
    assert!(deb.is_file(), "{text}");

    let (ok, fields) = sh("dpkg-deb", &["-f", deb.to_str().unwrap(), "Package", "Depends"]);
    assert!(ok, "{fields}");
    assert!(fields.contains(&format!("Package: {PKG}")), "{fields}");
    assert!(fields.contains("apache2") && fields.contains("libpython3.11"), "{fields}");
    let (ok, list) = sh("dpkg-deb", &["-c", deb.to_str().unwrap()]);
    assert!(ok, "{list}");
    for f in [
        "./usr/lib/apache2/modules/mod_wsgi_rs.so",
        "./usr/bin/mod_wsgi-express-rs",
        "./etc/apache2/mods-available/wsgi_rs.load",
        "./etc/apache2/mods-available/wsgi_rs.conf",
    ] {
        assert!(list.contains(f), "{f} missing from the package:\n{list}");
    }
    // Nothing Debian's libapache2-mod-wsgi-py3 owns.
    for f in ["./usr/lib/apache2/modules/mod_wsgi.so", "mods-available/wsgi.load", "mods-available/wsgi.conf"] {
        assert!(!list.contains(&format!("{f}\n")) && !list.lines().any(|l| l.ends_with(f)), "{f} would clash with Debian's package:\n{list}");
    }
    let x = dir.join("x");
    let (ok, t) = sh("dpkg-deb", &["-x", deb.to_str().unwrap(), x.to_str().unwrap()]);
    assert!(ok, "{t}");
    let load = fs::read_to_string(x.join("etc/apache2/mods-available/wsgi_rs.load")).unwrap();
    assert!(load.lines().any(|l| l == "# Conflicts: wsgi"), "{load}");
    assert!(load.contains("LoadModule wsgi_module /usr/lib/apache2/modules/mod_wsgi_rs.so"), "{load}");

    if !is_root() {
        // Installing needs root; the package's contents were checked above.
        let (ok, t) = sh(x.join("usr/bin/mod_wsgi-express-rs").to_str().unwrap(), &["--version"]);
        assert!(ok && t.starts_with("mod_wsgi-express-rs "), "{t}");
        return;
    }

    let guard = SystemGuard::new();
    assert!(!guard.was_installed, "{PKG} is already installed; remove it (dpkg -P {PKG}) before running this test");
    let (ok, t) = sh("dpkg", &["-i", deb.to_str().unwrap()]);
    assert!(ok, "dpkg -i:\n{t}");
    let so = Path::new("/usr/lib/apache2/modules/mod_wsgi_rs.so");
    assert!(so.is_file() && Path::new("/usr/bin/mod_wsgi-express-rs").is_file());
    let (ok, t) = sh("/usr/bin/mod_wsgi-express-rs", &["module-location"]);
    assert!(ok && t.trim() == so.to_str().unwrap(), "module-location of the installed program: {t}");
    let (ok, t) = sh("dpkg-query", &["-W", "-f=${Status}", "libapache2-mod-wsgi-py3"]);
    assert!(ok && t.contains("install ok installed"), "Debian's mod_wsgi must stay installed: {t}");

    // While Debian's mod_wsgi is enabled, a2enmod refuses ours (the Conflicts: line).
    let (ok, t) = sh("a2enmod", &["-m", "-q", "wsgi"]);
    assert!(ok, "a2enmod wsgi: {t}");
    let (ok, t) = sh("a2enmod", &["wsgi_rs"]);
    assert!(!ok && t.contains("conflict"), "a2enmod wsgi_rs must refuse while wsgi is enabled: {t}");
    assert!(!Path::new(ENABLED_DIR).join("wsgi_rs.load").exists());

    // Switching: a2dismod wsgi && a2enmod wsgi_rs, and Apache's configuration loads it.
    let (ok, t) = sh("a2dismod", &["-m", "-q", "wsgi"]);
    assert!(ok, "{t}");
    let (ok, t) = sh("a2enmod", &["-m", "-q", "wsgi_rs"]);
    assert!(ok, "a2enmod wsgi_rs: {t}");
    let (ok, t) = sh("apache2ctl", &["-t"]);
    assert!(ok && t.contains("Syntax OK"), "apache2ctl -t with wsgi_rs enabled: {t}");
    let (ok, t) = sh("apache2ctl", &["-t", "-D", "DUMP_MODULES"]);
    assert!(ok && t.contains("wsgi_module (shared)"), "{t}");

    // Back to Debian's module, then removal: the program and module go, the conffiles stay
    // until purge.
    let (ok, t) = sh("a2dismod", &["-m", "-q", "wsgi_rs"]);
    assert!(ok, "a2dismod wsgi_rs: {t}");
    let (ok, t) = sh("dpkg", &["-r", PKG]);
    assert!(ok, "dpkg -r: {t}");
    assert!(Path::new("/etc/apache2/mods-available/wsgi_rs.load").exists(), "conffiles stay until purge");
    assert!(!so.exists() && !Path::new("/usr/bin/mod_wsgi-express-rs").exists());
    let (ok, t) = sh("dpkg", &["-P", PKG]);
    assert!(ok, "dpkg -P: {t}");
    assert!(!Path::new("/etc/apache2/mods-available/wsgi_rs.load").exists());
    let (installed, _) = sh("dpkg-query", &["-W", "-f=${Status}", PKG]);
    assert!(!installed, "{PKG} still known to dpkg after purge");
    drop(guard);
    let (ok, t) = sh("apache2ctl", &["-t"]);
    assert!(ok, "the system's Apache configuration after the test: {t}");
}

//! A real Flask application in a virtualenv, served by a daemon process group with
//! `python-home=<venv>`, next to a second group of the same Apache without python-home that
//! must not see the venv's packages: two groups, two Python environments.
//!
//! The virtualenv is made once with `/usr/bin/python3 -m venv` + `pip install flask` (from the
//! package index) under `target/itest-venv/` and reused while it still imports flask. If pip
//! fails, the test fails with pip's output: it never skips.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The venv's own interpreter imports flask and reports the venv as its prefix.
fn venv_is_valid(venv: &Path) -> Result<(), String> {
    let py = venv.join("bin/python");
    if !venv.join("pyvenv.cfg").is_file() || !py.exists() {
        return Err("no pyvenv.cfg or bin/python".into());
    }
    let (ok, out) = run(Command::new(&py).args(["-c", "import sys, flask; print(sys.prefix)"]));
    if !ok {
        return Err(out);
    }
    if out.trim() != venv.to_string_lossy() {
        return Err(format!("sys.prefix {:?} is not {}", out.trim(), venv.display()));
    }
    Ok(())
}

fn add_mode_bits(path: &Path, bits: u32) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = std::fs::metadata(path) {
        let mode = md.permissions().mode() & 0o7777;
        if mode & bits != bits {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode | bits));
        }
    }
}

/// Creates (or reuses) the virtualenv with flask; returns its canonical path.
fn ensure_venv() -> PathBuf {
    let target = manifest_dir().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let venv = std::fs::canonicalize(&target).unwrap().join("itest-venv");
    if let Err(why) = venv_is_valid(&venv) {
        if venv.exists() {
            eprintln!("flask_venv: rebuilding {} ({})", venv.display(), why.trim());
            std::fs::remove_dir_all(&venv).unwrap_or_else(|e| panic!("rm -rf {}: {e}", venv.display()));
        }
        let (ok, out) = run(Command::new(PYTHON).args(["-m", "venv"]).arg(&venv));
        assert!(ok, "`{PYTHON} -m venv {}` failed:\n{out}", venv.display());
        let (ok, out) = run(
            Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "flask"])
                .env("PIP_NO_INPUT", "1"),
        );
        if !ok {
            // Leave no half-made venv behind to be mistaken for a good one.
            let _ = std::fs::remove_dir_all(&venv);
            panic!("`pip install flask` into {} failed:\n{out}", venv.display());
        }
        if let Err(why) = venv_is_valid(&venv) {
            panic!("the new virtualenv {} does not work: {why}\npip said:\n{out}", venv.display());
        }
    }
    // Readable by the server user (www-data when the tests run as root).
    let (ok, out) = run(Command::new("chmod").args(["-R", "o+rX"]).arg(&venv));
    assert!(ok, "chmod -R o+rX {}: {out}", venv.display());
    let mut cur = venv.parent();
    while let Some(p) = cur {
        if p == Path::new("/") || p.as_os_str().is_empty() {
            break;
        }
        add_mode_bits(p, 0o001);
        cur = p.parent();
    }
    venv
}

const FLASK_PY: &str = r#"
import sys
import flask
from flask import Flask, jsonify

app = Flask(__name__)

@app.route('/')
def index():
    return 'hello from flask'

@app.route('/json')
def json_route():
    return jsonify(message='hi', n=42)

@app.route('/prefix')
def prefix():
    return sys.prefix

@app.route('/flaskfile')
def flaskfile():
    return flask.__file__
"#;

const FLASK_WSGI: &str = r#"
import os, sys
sys.path.insert(0, os.path.dirname(__file__))
from app import app as application
"#;

const PLAIN_WSGI: &str = r#"
import sys

def application(environ, start_response):
    q = environ.get('QUERY_STRING', '')
    if q == 'prefix':
        b = sys.prefix
    else:
        try:
            import flask
            b = 'flask found at %s' % flask.__file__
        except ImportError:
            b = 'no flask'
    b = ('%s|%s' % (b, environ['mod_wsgi.process_group'])).encode()
    start_response('200 OK', [('Content-Type', 'text/plain'), ('Content-Length', str(len(b)))])
    return [b]
"#;

#[test]
fn flask_in_a_virtualenv_via_python_home_next_to_a_plain_group() {
    let venv = ensure_venv();
    let venv_s = venv.to_string_lossy().into_owned();
    let a = ApacheBuilder::new()
        .mpm(Mpm::Event)
        .script("app.py", FLASK_PY)
        .script("flask.wsgi", FLASK_WSGI)
        .script("plain.wsgi", PLAIN_WSGI)
        .conf("<Directory {dir}/scripts>\n    Require all granted\n</Directory>")
        .conf(&format!("WSGIDaemonProcess flaskapp processes=1 threads=4 python-home={venv_s}"))
        .conf("WSGIDaemonProcess plain processes=1 threads=2")
        .conf("WSGIScriptAlias /plain {dir}/scripts/plain.wsgi process-group=plain")
        .conf("WSGIScriptAlias / {dir}/scripts/flask.wsgi process-group=flaskapp")
        .start();

    // The first request may wait for the group to start and flask to import.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut r = a.get("/");
    while r.status == 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        r = a.get("/");
    }
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "hello from flask"),
        "flask app in group 'flaskapp' (python-home={venv_s}): {r}\n--- error.log ---\n{}",
        a.error_log()
    );

    let r = a.get("/json");
    assert_eq!(r.status, 200, "{r}\n{}", a.error_log());
    assert_eq!(r.header("Content-Type"), Some("application/json"), "{r}");
    assert_eq!(r.text().trim_end(), r#"{"message":"hi","n":42}"#, "{r}");

    let r = a.get("/prefix");
    assert_eq!((r.status, r.text()), (200, venv_s.clone()), "sys.prefix in the python-home group: {r}\n{}", a.error_log());
    let r = a.get("/flaskfile");
    assert!(
        r.status == 200 && r.text().starts_with(&format!("{venv_s}/lib/")),
        "flask must come from the venv: {r}"
    );

    // Unknown route: Flask's own 404.
    let r = a.get("/nope");
    assert_eq!(r.status, 404, "{r}");

    // The second group of the same Apache, without python-home: the system Python, no flask.
    let r = a.get("/plain");
    assert_eq!((r.status, r.text().as_str()), (200, "no flask|plain"), "group 'plain' must not see the venv: {r}\n{}", a.error_log());
    let r = a.get("/plain?prefix");
    assert_eq!((r.status, r.text().as_str()), (200, "/usr|plain"), "{r}");

    // And the flask group still works after the plain one was used.
    let r = a.get("/");
    assert_eq!((r.status, r.text().as_str()), (200, "hello from flask"), "{r}");

    let st = a.stop();
    assert!(!st.has_crash(), "{}", st.error_log);
}

#[test]
fn a_server_wide_python_home_applies_to_daemon_groups_without_their_own() {
    let venv = ensure_venv();
    let venv_s = venv.to_string_lossy().into_owned();
    let a = ApacheBuilder::new()
        .mpm(Mpm::Event)
        .script("plain.wsgi", PLAIN_WSGI)
        .conf("<Directory {dir}/scripts>\n    Require all granted\n</Directory>")
        .conf(&format!("WSGIPythonHome {venv_s}"))
        .conf("WSGIDaemonProcess inherits processes=1 threads=2")
        .conf("WSGIScriptAlias /daemon {dir}/scripts/plain.wsgi process-group=inherits")
        .conf("WSGIScriptAlias /embedded {dir}/scripts/plain.wsgi")
        .start();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut r = a.get("/daemon?prefix");
    while r.status == 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        r = a.get("/daemon?prefix");
    }
    assert_eq!((r.status, r.text()), (200, format!("{venv_s}|inherits")), "the group without python-home uses WSGIPythonHome: {r}\n{}", a.error_log());
    let r = a.get("/daemon");
    assert!(r.text().starts_with(&format!("flask found at {venv_s}/lib/")), "{r}");
    let r = a.get("/embedded?prefix");
    assert_eq!((r.status, r.text()), (200, format!("{venv_s}|")), "embedded mode too: {r}");
    let st = a.stop();
    assert!(!st.has_crash(), "{}", st.error_log);
}

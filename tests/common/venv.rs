//! Virtualenvs with packages from the package index for the tests: made once under `target/`
//! with Debian's Python (`/usr/bin/python3 -m venv` + `pip install`), reused while they still
//! import what they must, and readable by the server's user. If pip fails, the test fails with
//! pip's output: it never skips. A lock file serialises test processes making the same one.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{PYTHON, manifest_dir};

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The venv's own interpreter imports `module` and reports the venv as its prefix.
fn is_valid(venv: &Path, module: &str) -> Result<(), String> {
    let py = venv.join("bin/python");
    if !venv.join("pyvenv.cfg").is_file() || !py.exists() {
        return Err("no pyvenv.cfg or bin/python".into());
    }
    let (ok, out) = run(Command::new(&py).args(["-c", &format!("import sys, {module}; print(sys.prefix)")]));
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
    if let Ok(md) = fs::metadata(path) {
        let mode = md.permissions().mode() & 0o7777;
        if mode & bits != bits {
            let _ = fs::set_permissions(path, fs::Permissions::from_mode(mode | bits));
        }
    }
}

unsafe extern "C" {
    fn flock(fd: i32, operation: i32) -> i32;
}
const LOCK_EX: i32 = 2;

/// `target/<name>` with `packages` installed, importing `module`; its canonical path.
pub fn pip_venv(name: &str, packages: &[&str], module: &str) -> PathBuf {
    let target = manifest_dir().join("target");
    fs::create_dir_all(&target).unwrap();
    let target = fs::canonicalize(&target).unwrap();
    let venv = target.join(name);
    let lock_path = target.join(format!("{name}.lock"));
    let lock = fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap_or_else(|e| panic!("open {}: {e}", lock_path.display()));
    // SAFETY: flock on a descriptor we own; the lock goes with it when `lock` is closed.
    let rc = unsafe { flock(lock.as_raw_fd(), LOCK_EX) };
    assert_eq!(rc, 0, "flock {}", lock_path.display());
    if let Err(why) = is_valid(&venv, module) {
        if venv.exists() {
            eprintln!("rebuilding {} ({})", venv.display(), why.trim());
            fs::remove_dir_all(&venv).unwrap_or_else(|e| panic!("rm -rf {}: {e}", venv.display()));
        }
        let (ok, out) = run(Command::new(PYTHON).args(["-m", "venv"]).arg(&venv));
        assert!(ok, "`{PYTHON} -m venv {}` failed:\n{out}", venv.display());
        let (ok, out) = run(
            Command::new(venv.join("bin/python"))
                .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"])
                .args(packages)
                .env("PIP_NO_INPUT", "1"),
        );
        if !ok {
            // Leave no half-made venv behind to be mistaken for a good one.
            let _ = fs::remove_dir_all(&venv);
            panic!("`pip install {}` into {} failed:\n{out}", packages.join(" "), venv.display());
        }
        if let Err(why) = is_valid(&venv, module) {
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
    drop(lock);
    venv
}

/// The virtualenv with Flask that several tests share.
pub fn flask_venv() -> PathBuf {
    pip_venv("itest-venv", &["flask"], "flask")
}

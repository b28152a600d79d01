//! What the command needs of the operating system beyond std: users and groups, permission
//! checks on behalf of another user, signals, and the processes of a session.
//!
//! The system calls go through the library's safe module (`crate::sys`, src/sys compiled into
//! this program).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::sys::process;

/// A user account from the password database.
#[derive(Clone, Debug)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

/// Looks `name` up in the password database (files, NSS).
pub fn user_by_name(name: &str) -> Option<User> {
    let (uid, gid) = process::user_ids(name).ok()??;
    Some(User { name: name.to_string(), uid, gid })
}

/// The id of group `name`.
pub fn group_by_name(name: &str) -> Option<u32> {
    process::group_id(name).ok()?
}

/// A name for the user this program runs as, for messages: `$USER` (or `$LOGNAME`) when that
/// user has this uid, else `uid N`.
pub fn current_user() -> String {
    let uid = process::euid();
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|name| matches!(process::user_ids(name), Ok(Some((u, _))) if u == uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of group `gid`, or the number as text.
pub fn group_name(gid: u32) -> String {
    process::group_name(gid).ok().flatten().unwrap_or_else(|| gid.to_string())
}

/// Every group `user` is in (its primary group `gid` included).
pub fn groups_of(user: &str, gid: u32) -> Vec<u32> {
    process::group_list(user, gid).unwrap_or_else(|_| vec![gid])
}

/// Why `who` cannot use `path`: the first path component it cannot search, or the target
/// itself when it lacks read (and, for a directory, search) permission. Mode bits only
/// (ACLs are not consulted); `None` when it can.
pub fn inaccessible_to(path: &Path, uid: u32, gids: &[u32]) -> Option<PathBuf> {
    if uid == 0 {
        return None;
    }
    let allowed = |md: &fs::Metadata, bits: u32| -> bool {
        let mode = md.mode();
        let granted = if md.uid() == uid {
            (mode >> 6) & 7
        } else if gids.contains(&md.gid()) {
            (mode >> 3) & 7
        } else {
            mode & 7
        };
        granted & bits == bits
    };
    let full = fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut cur = PathBuf::from("/");
    let parts: Vec<_> = full.components().skip(1).collect();
    for (i, part) in parts.iter().enumerate() {
        let Ok(md) = fs::metadata(&cur) else { return Some(cur) };
        if !allowed(&md, 1) {
            return Some(cur);
        }
        cur.push(part);
        if i + 1 == parts.len() {
            let Ok(md) = fs::metadata(&cur) else { return Some(cur) };
            let need = if md.is_dir() { 5 } else { 4 };
            if !allowed(&md, need) {
                return Some(cur);
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------------------------
// Signals
// ---------------------------------------------------------------------------------------------

/// Records SIGINT, SIGTERM, SIGHUP and SIGUSR1 for [`take_signals`] instead of dying.
pub fn catch_signals() {
    let _ = crate::sys::signal::record_on(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGUSR1]);
}

/// The signals received since the last call.
pub fn take_signals() -> Vec<i32> {
    crate::sys::signal::take_recorded()
}

/// Sends `sig` to process `pid` (a pid above 0); false if it could not.
pub fn kill(pid: i32, sig: i32) -> bool {
    process::kill(pid, sig).is_ok()
}

/// Makes this process the reaper of orphaned descendants, so nothing the server started
/// escapes to init while we still run.
pub fn become_subreaper() {
    let _ = process::become_subreaper();
}

/// Makes the process `cmd` starts the leader of a session of its own (so the terminal's
/// signals reach only this program, and everything it starts can be found by session id),
/// sent SIGTERM if this program dies.
pub fn in_own_session(cmd: &mut Command) {
    process::spawn_in_own_session(cmd, libc::SIGTERM);
}

/// Reaps one exited child without blocking: its pid and wait status.
pub fn reap_any() -> Option<(i32, i32)> {
    process::waitpid(-1, libc::WNOHANG).ok().flatten()
}

/// Exit code of a process from its wait status (128 + signal when killed).
pub fn exit_code(status: i32) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// A process seen in /proc.
#[derive(Clone, Debug)]
pub struct Proc {
    pub pid: i32,
    pub state: char,
    pub comm: String,
}

/// Live (non-zombie) processes whose session id is `sid`.
pub fn session_processes(sid: i32) -> Vec<Proc> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir("/proc") else { return out };
    for e in rd.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else { continue };
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // pid (comm) state ppid pgrp session ...: comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let rest: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if rest.len() < 4 || rest[3].parse::<i32>().ok() != Some(sid) {
            continue;
        }
        let state = rest[0].chars().next().unwrap_or('?');
        if state == 'Z' || state == 'X' {
            continue;
        }
        out.push(Proc { pid, state, comm: stat[open + 1..close].to_string() });
    }
    out
}

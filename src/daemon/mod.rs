//! Daemon mode, process side: the group manager (forked from the Apache parent, no Python, no
//! threads) and the worker processes it forks and supervises, which run the WSGI application.
//!
//! The Apache-facing half (creating sockets, forking managers, relaying requests from Apache
//! children) lives in `crate::apache::daemon` and `crate::apache::proxy`. System calls go
//! through `crate::sys`.

pub mod board;
pub mod control;
pub mod io;
pub mod manager;
pub mod worker;

use std::os::fd::OwnedFd;
use std::sync::Mutex;

use crate::config::DaemonProcess;

/// Everything a group's processes need, fixed when the Apache parent creates the group.
#[derive(Debug)]
pub struct GroupRuntime {
    pub spec: DaemonProcess,
    /// The listening socket (non-blocking), shared by every worker of the group. Each process
    /// holds its own copy after fork and takes it out to use or close it ([`Self::take_listener`]).
    pub listener: Mutex<Option<OwnedFd>>,
    pub socket_path: String,
    pub secret: [u8; crate::protocol::SECRET_LEN],
    /// The uid Apache children run as: the only peer (besides root) allowed to connect.
    pub apache_uid: u32,
    /// The user and groups the daemon processes switch to (when started as root).
    pub uid: u32,
    pub gid: u32,
    pub user_name: String,
    pub apache_version: (u32, u32, u32),
    /// Apache's MPM (for the `apache` Python module).
    pub apache_mpm: crate::wsgi::environ::ApacheMpm,
    /// WSGIImportScript files for this group with their application group names, loaded when a
    /// worker starts.
    pub imports: Vec<(String, String)>,
    /// Free request threads per process, shared by the Apache children and the daemon
    /// processes (see [`board`]).
    pub board: board::Board<crate::sys::shm::SharedI32s>,
    /// The server-wide WSGIPythonHome, for groups without `python-home=`.
    pub global_python_home: Option<String>,
    /// WSGIRestrictStdin Off / WSGIRestrictStdout On (server-wide).
    pub allow_stdin: bool,
    pub restrict_stdout: bool,
    /// supplementary-groups=: groups the daemon processes join besides the user's own.
    pub supplementary_gids: Vec<u32>,
    /// script-user= / script-group=: the owner a script must have to run in this group.
    pub script_uid: Option<u32>,
    pub script_gid: Option<u32>,
    /// Server-wide interpreter settings (WSGIPythonOptimize, ...); the group's python-eggs= and
    /// switch-interval= win over WSGIPythonEggs and WSGISwitchInterval.
    pub python: crate::config::PythonSettings,
}

impl GroupRuntime {
    /// Takes this process's copy of the listening socket (`None` once taken): a worker to accept
    /// on it, any other process to close it.
    pub fn take_listener(&self) -> Option<OwnedFd> {
        self.listener.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// Compares secrets in constant time.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fills `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    crate::sys::fd::fill_random(buf)
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_compare() {
        assert!(super::same_secret(b"abc", b"abc"));
        assert!(!super::same_secret(b"abc", b"abd"));
        assert!(!super::same_secret(b"abc", b"ab"));
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        super::random_bytes(&mut a).unwrap();
        super::random_bytes(&mut b).unwrap();
        assert_ne!(a, b);
    }
}

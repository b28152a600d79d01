//! Daemon mode, process side: the group manager (forked from the Apache parent, no Python, no
//! threads) and the worker processes it forks and supervises, which run the WSGI application.
//!
//! The Apache-facing half (creating sockets, forking managers, relaying requests from Apache
//! children) lives in `crate::apache::daemon` and `crate::apache::proxy`.

pub mod control;
pub mod io;
pub mod manager;
pub mod worker;

use std::os::fd::RawFd;

use crate::config::DaemonProcess;

/// Everything a group's processes need, fixed when the Apache parent creates the group.
#[derive(Debug, Clone)]
pub struct GroupRuntime {
    pub spec: DaemonProcess,
    /// The listening socket (non-blocking), shared by every worker of the group.
    pub listen_fd: RawFd,
    pub socket_path: String,
    pub secret: [u8; crate::protocol::SECRET_LEN],
    /// The uid Apache children run as: the only peer (besides root) allowed to connect.
    pub apache_uid: u32,
    /// The user and groups the daemon processes switch to (when started as root).
    pub uid: u32,
    pub gid: u32,
    pub user_name: String,
    pub apache_version: (u32, u32, u32),
    /// WSGIImportScript files for this group with their application group names, loaded when a
    /// worker starts.
    pub imports: Vec<(String, String)>,
}

/// Compares secrets in constant time.
pub fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Fills `buf` from the OS random source.
pub fn random_bytes(buf: &mut [u8]) -> std::io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        // SAFETY: getrandom writes at most len bytes into our buffer.
        let n = unsafe { libc::getrandom(buf[off..].as_mut_ptr().cast(), buf.len() - off, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        off += n as usize;
    }
    Ok(())
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

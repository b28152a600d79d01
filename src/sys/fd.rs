//! Descriptors and files: pipes, plain reads and writes, `poll`, `fstat`, `mkdtemp`, and the OS
//! random source.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// A new pipe as (read end, write end). `flags` are `pipe2` flags (`O_CLOEXEC`, `O_NONBLOCK`).
pub fn pipe(flags: libc::c_int) -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as RawFd; 2];
    // SAFETY: pipe2 writes two descriptors into our two-element array.
    unsafe { syscall!(pipe2(fds.as_mut_ptr(), flags)) }?;
    // SAFETY: on success both descriptors are new and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// One `read` (retried on EINTR). `Ok(0)` at end of file.
pub fn read(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: read writes at most buf.len() bytes into buf, which we borrow mutably.
    let n = unsafe { syscall!(retry read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())) }?;
    Ok(n as usize)
}

/// One `write` (retried on EINTR); returns how many bytes went out.
pub fn write(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: write reads at most buf.len() bytes from buf.
    let n = unsafe { syscall!(retry write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len())) }?;
    Ok(n as usize)
}

/// Waits up to `timeout` for `fd` to become readable (or hung up). Returns whether it did; an
/// interrupted wait counts as a timeout.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<bool> {
    let mut pfd = libc::pollfd { fd: fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    let ms = timeout.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
    // SAFETY: poll reads and writes exactly the one pollfd we pass.
    match unsafe { syscall!(poll(&mut pfd, 1, ms)) } {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

/// What this crate needs of `fstat`.
#[derive(Debug, Clone, Copy)]
pub struct FileStat {
    pub mode: libc::mode_t,
    pub size: u64,
}

impl FileStat {
    pub fn is_regular_file(&self) -> bool {
        self.mode & libc::S_IFMT == libc::S_IFREG
    }
}

/// `fstat` of a descriptor we hold.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<FileStat> {
    fstat_raw(fd.as_raw_fd())
}

/// `fstat` of a descriptor number owned outside Rust (a Python file object's `fileno()`).
///
/// Only the kernel looks at the number: if the owner closed it meanwhile the call fails with
/// EBADF (or describes whatever the number names now); no memory is involved.
pub fn fstat_raw(fd: RawFd) -> io::Result<FileStat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: fstat fills the stat buffer we pass (it is only read below after success).
    unsafe { syscall!(fstat(fd, st.as_mut_ptr())) }?;
    // SAFETY: fstat succeeded, so it initialised the whole buffer.
    let st = unsafe { st.assume_init() };
    Ok(FileStat { mode: st.st_mode, size: st.st_size.max(0) as u64 })
}

/// Creates a fresh directory from `template` (ending in `XXXXXX`, as `mkdtemp(3)`) and returns
/// its path.
pub fn mkdtemp(template: &str) -> io::Result<String> {
    let mut buf = CString::new(template).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?.into_bytes_with_nul();
    // SAFETY: mkdtemp rewrites the X's of our NUL-terminated buffer in place (no length change).
    let made = unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) };
    if made.is_null() {
        return Err(io::Error::last_os_error());
    }
    buf.pop();
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// Fills `buf` from the OS random source (`getrandom`, retried on EINTR and short reads).
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut off = 0;
    while off < buf.len() {
        let rest = &mut buf[off..];
        // SAFETY: getrandom writes at most rest.len() bytes into rest.
        let n = unsafe { syscall!(retry getrandom(rest.as_mut_ptr().cast(), rest.len(), 0)) }?;
        off += n as usize;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn pipe_read_write_poll() {
        let (r, w) = pipe(libc::O_CLOEXEC | libc::O_NONBLOCK).unwrap();
        assert!(!wait_readable(r.as_fd(), Duration::from_millis(1)).unwrap());
        assert_eq!(write(w.as_fd(), b"abcd").unwrap(), 4);
        assert!(wait_readable(r.as_fd(), Duration::from_millis(100)).unwrap());
        let mut buf = [0u8; 8];
        assert_eq!(read(r.as_fd(), &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"abcd");
        assert_eq!(read(r.as_fd(), &mut buf).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        assert!(!fstat(r.as_fd()).unwrap().is_regular_file());
        assert!(fstat_raw(-1).is_err());
    }

    #[test]
    fn random_and_tempdir() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        fill_random(&mut a).unwrap();
        fill_random(&mut b).unwrap();
        assert_ne!(a, b);
        let d = mkdtemp(&format!("{}/sysfd.XXXXXX", std::env::temp_dir().display())).unwrap();
        assert!(!d.ends_with("XXXXXX"));
        assert!(std::path::Path::new(&d).is_dir());
        std::fs::remove_dir(&d).unwrap();
    }
}

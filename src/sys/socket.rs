//! Unix stream sockets: creating, binding, listening, connecting with a time limit, accepting,
//! socket options, the peer's credentials, and passing a descriptor with bytes (SCM_RIGHTS).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// A Unix socket address for `path`, or InvalidInput if it does not fit (108 bytes with the NUL)
/// or contains a NUL.
fn unix_addr(path: &str) -> io::Result<libc::sockaddr_un> {
    let mut addr = libc::sockaddr_un { sun_family: libc::AF_UNIX as libc::sa_family_t, sun_path: [0; 108] };
    let bytes = path.as_bytes();
    if bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "socket path too long"));
    }
    for (d, s) in addr.sun_path.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(addr)
}

const ADDR_LEN: libc::socklen_t = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;

/// A new Unix stream socket, close-on-exec, and non-blocking if asked.
pub fn unix_stream_socket(nonblocking: bool) -> io::Result<OwnedFd> {
    let flags = libc::SOCK_STREAM | libc::SOCK_CLOEXEC | if nonblocking { libc::SOCK_NONBLOCK } else { 0 };
    // SAFETY: socket() takes no pointers.
    let fd = unsafe { syscall!(socket(libc::AF_UNIX, flags, 0)) }?;
    // SAFETY: on success the descriptor is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `sock` to the filesystem path `path`.
pub fn bind_unix(sock: BorrowedFd<'_>, path: &str) -> io::Result<()> {
    let addr = unix_addr(path)?;
    // SAFETY: bind reads ADDR_LEN bytes of our sockaddr_un.
    unsafe { syscall!(bind(sock.as_raw_fd(), (&raw const addr).cast(), ADDR_LEN)) }?;
    Ok(())
}

pub fn listen(sock: BorrowedFd<'_>, backlog: i32) -> io::Result<()> {
    // SAFETY: listen takes no pointers.
    unsafe { syscall!(listen(sock.as_raw_fd(), backlog)) }?;
    Ok(())
}

/// Connects `sock` to the socket at `path` (not retried on EINTR: a connect that was interrupted
/// goes on in the background).
pub fn connect_unix(sock: BorrowedFd<'_>, path: &str) -> io::Result<()> {
    let addr = unix_addr(path)?;
    // SAFETY: connect reads ADDR_LEN bytes of our sockaddr_un.
    unsafe { syscall!(connect(sock.as_raw_fd(), (&raw const addr).cast(), ADDR_LEN)) }?;
    Ok(())
}

/// A blocking connect to `path` that gives up after `timeout` (with a full listen backlog it would
/// otherwise wait without limit); writes on the connection get the same limit (SO_SNDTIMEO).
pub fn connect_unix_timeout(path: &str, timeout: Duration) -> io::Result<UnixStream> {
    unix_addr(path)?;
    let fd = unix_stream_socket(false)?;
    let _ = set_send_timeout(fd.as_fd(), timeout);
    connect_unix(fd.as_fd(), path)?;
    Ok(UnixStream::from(fd))
}

/// Accepts one connection (close-on-exec). Not retried: the listening sockets here are
/// non-blocking and the caller waits for readiness again.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // SAFETY: accept4 with null address pointers writes no address.
    let fd = unsafe { syscall!(accept4(listener.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut(), libc::SOCK_CLOEXEC)) }?;
    // SAFETY: on success the descriptor is new and owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Sets a socket option whose value is the plain C value `value`.
fn set_option<T: Copy>(sock: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    let len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: setsockopt reads `len` bytes from `value`, which is a live T of that size.
    unsafe { syscall!(setsockopt(sock.as_raw_fd(), level, name, (value as *const T).cast(), len)) }?;
    Ok(())
}

/// SO_SNDTIMEO: how long a blocking send (or connect) may wait.
pub fn set_send_timeout(sock: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval { tv_sec: timeout.as_secs() as libc::time_t, tv_usec: timeout.subsec_micros() as libc::suseconds_t };
    set_option(sock, libc::SOL_SOCKET, libc::SO_SNDTIMEO, &tv)
}

/// SO_SNDBUF / SO_RCVBUF: the kernel's buffer sizes for this socket (`None`: leave as is).
pub fn set_buffer_sizes(sock: BorrowedFd<'_>, send: Option<u32>, receive: Option<u32>) -> io::Result<()> {
    if let Some(n) = send {
        set_option(sock, libc::SOL_SOCKET, libc::SO_SNDBUF, &(n.min(i32::MAX as u32) as libc::c_int))?;
    }
    if let Some(n) = receive {
        set_option(sock, libc::SOL_SOCKET, libc::SO_RCVBUF, &(n.min(i32::MAX as u32) as libc::c_int))?;
    }
    Ok(())
}

/// SO_RCVLOWAT: wake a blocked reader only once at least `bytes` are there (end of stream and
/// timeouts still wake it).
pub fn set_recv_lowat(sock: BorrowedFd<'_>, bytes: libc::c_int) -> io::Result<()> {
    set_option(sock, libc::SOL_SOCKET, libc::SO_RCVLOWAT, &bytes)
}

/// The credentials of the process at the other end of a Unix socket (SO_PEERCRED).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    pub pid: libc::pid_t,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
}

pub fn peer_cred(sock: BorrowedFd<'_>) -> io::Result<PeerCred> {
    let mut cred = libc::ucred { pid: 0, uid: 0, gid: 0 };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into our ucred and updates len.
    unsafe { syscall!(getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, libc::SO_PEERCRED, (&raw mut cred).cast(), &mut len)) }?;
    Ok(PeerCred { pid: cred.pid, uid: cred.uid, gid: cred.gid })
}

/// Control-message space for one descriptor, aligned as `struct cmsghdr` requires.
#[repr(C, align(8))]
struct CmsgBuf([u8; 64]);

/// CMSG_SPACE for one descriptor.
// SAFETY: CMSG_SPACE is a pure size computation (unsafe only because libc declares it so).
const FD_SPACE: usize = unsafe { libc::CMSG_SPACE(std::mem::size_of::<RawFd>() as u32) } as usize;
// SAFETY: as FD_SPACE.
const FD_LEN: usize = unsafe { libc::CMSG_LEN(std::mem::size_of::<RawFd>() as u32) } as usize;
const _: () = assert!(FD_SPACE <= 64);

/// One `sendmsg` of `bytes` with the descriptor `fd` attached (MSG_NOSIGNAL; retried on EINTR).
/// Returns how many bytes went out; the descriptor goes with the first of them.
///
/// `fd` may be a number owned outside Rust (a Python file's `fileno()`): the kernel duplicates it
/// into the message or fails with EBADF, nothing else is done with it.
pub fn send_with_fd(sock: BorrowedFd<'_>, bytes: &[u8], fd: RawFd) -> io::Result<usize> {
    let mut cbuf = CmsgBuf([0; 64]);
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: bytes.len() };
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = FD_SPACE as _;
    // SAFETY: msg_control points at our 8-byte aligned buffer of at least FD_SPACE bytes, so
    // CMSG_FIRSTHDR returns a non-null header inside it, and the header and its data (FD_LEN
    // bytes) lie within the buffer; the data may be unaligned, hence write_unaligned.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = FD_LEN as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg) as *mut RawFd, fd);
    }
    // SAFETY: msg points at our iovec (bytes, only read) and control buffer, alive for the call.
    let n = unsafe { syscall!(retry sendmsg(sock.as_raw_fd(), &msg, libc::MSG_NOSIGNAL)) }?;
    Ok(n as usize)
}

/// One `recvmsg` into `buf` (MSG_CMSG_CLOEXEC; retried on EINTR): how many bytes (0 at end of
/// stream) and the descriptor that came with them, if any. Should a peer attach more than one,
/// the first is returned and the others are closed.
pub fn recv_with_fd(sock: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    let mut cbuf = CmsgBuf([0; 64]);
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: msghdr is plain data; all-zero is a valid (empty) value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.0.as_mut_ptr().cast();
    msg.msg_controllen = FD_SPACE as _;
    // SAFETY: msg points at our iovec (buf, borrowed mutably) and control buffer for the call;
    // recvmsg writes at most their lengths.
    let n = unsafe { syscall!(retry recvmsg(sock.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC)) }?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    if n > 0 {
        // SAFETY: after recvmsg, msg_control/msg_controllen describe the control messages the
        // kernel wrote into our buffer; CMSG_FIRSTHDR/CMSG_NXTHDR only return headers inside it
        // (or null). Each SCM_RIGHTS message carries (cmsg_len - CMSG_LEN(0)) / 4 descriptors
        // that the kernel installed in this process for us: we own them from here on.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            while !cmsg.is_null() {
                if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(cmsg) as *const RawFd;
                    let count = ((*cmsg).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize) / std::mem::size_of::<RawFd>();
                    for i in 0..count {
                        fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                    }
                }
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
        }
    }
    let first = if fds.is_empty() { None } else { Some(fds.swap_remove(0)) };
    Ok((n as usize, first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn temp_path(tag: &str) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}/sys-{tag}-{}-{n}.sock", std::env::temp_dir().display(), std::process::id())
    }

    #[test]
    fn listen_connect_accept_and_credentials() {
        let path = temp_path("l");
        let l = unix_stream_socket(true).unwrap();
        bind_unix(l.as_fd(), &path).unwrap();
        listen(l.as_fd(), 4).unwrap();
        assert_eq!(accept(l.as_fd()).unwrap_err().kind(), io::ErrorKind::WouldBlock);
        let mut c = connect_unix_timeout(&path, Duration::from_secs(1)).unwrap();
        set_recv_lowat(c.as_fd(), 6).unwrap();
        let s = accept(l.as_fd()).unwrap();
        let cred = peer_cred(s.as_fd()).unwrap();
        assert_eq!(cred.pid as u32, std::process::id());
        // SAFETY: getuid has no preconditions.
        assert_eq!(cred.uid, unsafe { libc::getuid() });
        let mut s = UnixStream::from(s);
        c.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"ping");
        std::fs::remove_file(&path).unwrap();
        assert!(connect_unix_timeout(&path, Duration::from_millis(100)).is_err());
    }

    #[test]
    fn long_or_nul_paths_are_refused() {
        let long = "x".repeat(108);
        assert_eq!(connect_unix_timeout(&long, Duration::from_secs(1)).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(unix_addr("a\0b").unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert!(unix_addr(&"y".repeat(107)).is_ok());
    }

    #[test]
    fn extra_descriptors_are_closed() {
        let (a, b) = UnixStream::pair().unwrap();
        let (r1, w1) = super::super::fd::pipe(libc::O_CLOEXEC).unwrap();
        // Two descriptors in one SCM_RIGHTS message.
        let mut cbuf = CmsgBuf([0; 64]);
        let bytes = b"x";
        let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut libc::c_void, iov_len: 1 };
        // SAFETY: as send_with_fd, with room for two descriptors (CMSG_SPACE(8) <= 64).
        unsafe {
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = cbuf.0.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(8) as _;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(8) as _;
            let data = libc::CMSG_DATA(cmsg) as *mut RawFd;
            std::ptr::write_unaligned(data, r1.as_raw_fd());
            std::ptr::write_unaligned(data.add(1), w1.as_raw_fd());
            assert_eq!(libc::sendmsg(a.as_raw_fd(), &msg, 0), 1);
        }
        let mut buf = [0u8; 4];
        let (n, fd) = recv_with_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!(n, 1);
        let fd = fd.expect("first descriptor");
        assert!(!super::super::fd::fstat(fd.as_fd()).unwrap().is_regular_file());
        // The one sent as a plain descriptor number arrives too.
        assert_eq!(send_with_fd(a.as_fd(), b"yz", fd.as_raw_fd()).unwrap(), 2);
        let (n, fd2) = recv_with_fd(b.as_fd(), &mut buf).unwrap();
        assert_eq!((n, fd2.is_some()), (2, true));
    }
}

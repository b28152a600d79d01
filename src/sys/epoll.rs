//! An owned epoll set.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// An epoll descriptor, closed when dropped.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

/// Interest in readability, delivered once until re-armed with [`Epoll::modify`].
pub const READABLE_ONESHOT: u32 = (libc::EPOLLIN | libc::EPOLLONESHOT) as u32;

impl Epoll {
    /// A new epoll set (close-on-exec).
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers.
        let fd = unsafe { syscall!(epoll_create1(libc::EPOLL_CLOEXEC)) }?;
        // SAFETY: on success the descriptor is new and owned by nobody else.
        Ok(Epoll { fd: unsafe { OwnedFd::from_raw_fd(fd) } })
    }

    fn ctl(&self, op: libc::c_int, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: epoll_ctl reads the one event we pass; both descriptors are live.
        unsafe { syscall!(epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut ev)) }?;
        Ok(())
    }

    /// Adds `fd` with `events`; `token` comes back with its events.
    pub fn add(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, token)
    }

    /// Changes (or re-arms) the interest of a descriptor already in the set.
    pub fn modify(&self, fd: BorrowedFd<'_>, events: u32, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events, token)
    }

    /// Waits up to `timeout` for one event; its token, or `None` on timeout or when interrupted.
    pub fn wait_one(&self, timeout: Duration) -> io::Result<Option<u64>> {
        let mut ev = [libc::epoll_event { events: 0, u64: 0 }];
        let ms = timeout.as_millis().min(libc::c_int::MAX as u128) as libc::c_int;
        // SAFETY: epoll_wait writes at most one event (maxevents 1) into our one-element array.
        match unsafe { syscall!(epoll_wait(self.fd.as_raw_fd(), ev.as_mut_ptr(), 1, ms)) } {
            Ok(n) if n > 0 => Ok(Some(ev[0].u64)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl AsFd for Epoll {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    #[test]
    fn oneshot_fires_once_until_rearmed() {
        let ep = Epoll::new().unwrap();
        let (mut a, b) = UnixStream::pair().unwrap();
        ep.add(b.as_fd(), READABLE_ONESHOT, 7).unwrap();
        assert_eq!(ep.wait_one(Duration::from_millis(1)).unwrap(), None);
        a.write_all(b"x").unwrap();
        assert_eq!(ep.wait_one(Duration::from_millis(100)).unwrap(), Some(7));
        assert_eq!(ep.wait_one(Duration::from_millis(1)).unwrap(), None);
        ep.modify(b.as_fd(), READABLE_ONESHOT, 8).unwrap();
        assert_eq!(ep.wait_one(Duration::from_millis(100)).unwrap(), Some(8));
    }
}

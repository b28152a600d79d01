//! The system calls this crate makes outside Apache and CPython, behind safe functions.
//!
//! Every `libc` call of the daemon side (group managers, worker processes, the relay in Apache
//! children and the socket set-up in the Apache parent) goes through this module, so the rest of
//! the crate needs no `unsafe`. The conventions, in the style of mio's `sys/unix`:
//!
//! - a failed call is an [`std::io::Error`] made from `errno` (the `syscall!` macro below), and
//!   calls that wait are retried when a signal interrupts them (EINTR);
//! - descriptors are [`std::os::fd::OwnedFd`] (closed when dropped, so on every error path) or
//!   [`std::os::fd::BorrowedFd`] (valid for the borrow); a raw descriptor number is only taken
//!   where it names a descriptor owned outside Rust (a Python file's `fileno()`), and then only for
//!   calls that at worst fail with EBADF;
//! - what is only sound in a single-threaded process (`fork`, changing the environment or the
//!   locale, rewriting the command line) checks that it is, instead of trusting the caller.
//!
//! By concern: [`socket`] (Unix sockets, socket options, peer credentials, descriptor passing),
//! [`epoll`], [`fd`] (pipes, reads and writes, `poll`, `fstat`, `mkdtemp`, the OS random source),
//! [`process`] (fork, wait, kill, exit, credentials, process attributes) and [`signal`].

/// Calls `libc::$fn(args)` and turns the C convention (-1 and `errno`) into an `io::Result`.
///
/// The call itself is not wrapped: the caller writes the `unsafe` block, with the `SAFETY`
/// comment for the arguments it passes. `syscall!(retry f(..))` calls again while the call fails
/// with EINTR; use it for calls that are safe to repeat (not `connect` or `close`).
macro_rules! syscall {
    (retry $fn:ident ( $($arg:expr),* $(,)? )) => {{
        loop {
            let r = libc::$fn($($arg),*);
            if r != -1 {
                break Ok(r);
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                break Err(e);
            }
        }
    }};
    ($fn:ident ( $($arg:expr),* $(,)? )) => {{
        let r = libc::$fn($($arg),*);
        if r == -1 { Err(std::io::Error::last_os_error()) } else { Ok(r) }
    }};
}

pub mod epoll;
pub mod fd;
pub mod process;
pub mod shm;
pub mod signal;
pub mod socket;

//! Processes: fork, wait, kill, exit; credentials and users; process attributes (process group,
//! parent-death signal, name and command line, umask, environment, locale).

use std::convert::Infallible;
use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

pub use libc::pid_t;

/// The fields of `/proc/self/stat` after the command name (field 3, the state, is index 0).
fn proc_stat_fields() -> io::Result<Vec<u64>> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| io::Error::other("unreadable /proc/self/stat"))?;
    Ok(rest.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect())
}

/// How many threads this process has (field 20 of `/proc/self/stat`).
pub fn thread_count() -> io::Result<usize> {
    let f = proc_stat_fields()?;
    match f.get(17) {
        Some(&n) if n > 0 => Ok(n as usize),
        _ => Err(io::Error::other("unreadable /proc/self/stat")),
    }
}

/// Ok if this thread is the only one, so no other can appear until this thread starts it.
fn require_single_thread(what: &str) -> io::Result<()> {
    match thread_count()? {
        1 => Ok(()),
        n => Err(io::Error::other(format!("cannot {what} in a process with {n} threads"))),
    }
}

/// Forks. In the parent, returns the child's pid. In the child, hands `give` over as owned
/// descriptors to `child`, runs it and ends the process with `_exit(1)` should it unwind: the
/// child never returns from this call, so never into the caller's frames (nor into Apache's).
///
/// Refuses (with an error) unless this process has a single thread, the only state in which a
/// forked child may do anything besides calling async-signal-safe functions.
pub fn fork<const N: usize, F>(give: [BorrowedFd<'_>; N], child: F) -> io::Result<pid_t>
where
    F: FnOnce([OwnedFd; N]) -> Infallible,
{
    require_single_thread("fork")?;
    // SAFETY: this thread is the only one (checked just now; no other can have started since,
    // as only this thread could have started it).
    unsafe { fork_unchecked(give, child) }
}

/// [`fork`] without the thread check.
///
/// # Safety
/// The process must have no other threads (the Apache parent, which by design runs none), or
/// `child` may only call async-signal-safe functions.
pub unsafe fn fork_unchecked<const N: usize, F>(give: [BorrowedFd<'_>; N], child: F) -> io::Result<pid_t>
where
    F: FnOnce([OwnedFd; N]) -> Infallible,
{
    // SAFETY: the caller guarantees that forking is sound here (see above).
    let pid = unsafe { syscall!(fork()) }?;
    if pid != 0 {
        return Ok(pid);
    }
    // SAFETY: each descriptor in `give` is borrowed from an owner that outlives this call, and in
    // the child this call never returns (it ends with _exit below): so in this process nothing
    // else will ever close them, and the child may own its copies.
    let fds = give.map(|b| unsafe { OwnedFd::from_raw_fd(b.as_raw_fd()) });
    // A panic must never unwind out of the forked child into the code it was forked from.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || child(fds)));
    exit_now(1)
}

/// `waitpid`, retried on EINTR: `Some((pid, status))` for a child that changed state, `None` when
/// `WNOHANG` was given and none did.
pub fn waitpid(pid: pid_t, options: libc::c_int) -> io::Result<Option<(pid_t, libc::c_int)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: waitpid writes the status into our int.
    let r = unsafe { syscall!(retry waitpid(pid, &mut status, options)) }?;
    Ok(if r == 0 { None } else { Some((r, status)) })
}

/// Sends `sig` to the process `pid`. Refuses pids below 1, which would signal process groups or
/// every process.
pub fn kill(pid: pid_t, sig: libc::c_int) -> io::Result<()> {
    if pid <= 0 {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    // SAFETY: kill takes no pointers.
    unsafe { syscall!(kill(pid, sig)) }?;
    Ok(())
}

/// Ends the process at once (`_exit`): no exit handlers, no destructors, no flushing.
pub fn exit_now(code: libc::c_int) -> ! {
    // SAFETY: _exit takes no pointers and does not return.
    unsafe { libc::_exit(code) }
}

pub fn parent_pid() -> pid_t {
    // SAFETY: getppid has no preconditions and cannot fail.
    unsafe { libc::getppid() }
}

pub fn uid() -> libc::uid_t {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

pub fn gid() -> libc::gid_t {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

pub fn euid() -> libc::uid_t {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn egid() -> libc::gid_t {
    // SAFETY: getegid has no preconditions and cannot fail.
    unsafe { libc::getegid() }
}

/// Sets the supplementary groups to those of `user` plus `gid` (`initgroups`).
pub fn init_groups(user: &CStr, gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: initgroups reads the NUL-terminated user name.
    unsafe { syscall!(initgroups(user.as_ptr(), gid)) }?;
    Ok(())
}

/// Drops every supplementary group (`setgroups(0, NULL)`).
/// Sets this process's supplementary groups to `gids`.
pub fn set_groups(gids: &[libc::gid_t]) -> io::Result<()> {
    // SAFETY: setgroups reads `gids.len()` entries from the slice for the duration of the call.
    unsafe { syscall!(setgroups(gids.len(), gids.as_ptr())) }?;
    Ok(())
}

pub fn clear_groups() -> io::Result<()> {
    // SAFETY: with a count of 0 setgroups reads no list.
    unsafe { syscall!(setgroups(0, std::ptr::null())) }?;
    Ok(())
}

pub fn set_gid(gid: libc::gid_t) -> io::Result<()> {
    // SAFETY: setgid takes no pointers.
    unsafe { syscall!(setgid(gid)) }?;
    Ok(())
}

pub fn set_uid(uid: libc::uid_t) -> io::Result<()> {
    // SAFETY: setuid takes no pointers.
    unsafe { syscall!(setuid(uid)) }?;
    Ok(())
}

/// Calls one of the reentrant database lookups (`getpwnam_r`, `getgrnam_r`, `getgrgid_r`)
/// with a buffer that grows while the C library says it is too small; `read` takes what it
/// needs from the record found (`None`: no such entry).
fn db_lookup<R, T>(
    mut call: impl FnMut(*mut R, &mut [libc::c_char], &mut *mut R) -> libc::c_int,
    read: impl FnOnce(&R) -> T,
) -> io::Result<Option<T>> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        let mut rec = MaybeUninit::<R>::uninit();
        let mut found: *mut R = std::ptr::null_mut();
        let rc = call(rec.as_mut_ptr(), &mut buf, &mut found);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        // SAFETY: a non-null `found` points at our record, which the call filled; the strings
        // it points to are in `buf`, alive until we return.
        return Ok(unsafe { found.as_ref() }.map(read));
    }
}

/// A user's uid and primary gid, `None` if there is no such user.
pub fn user_ids(name: &str) -> io::Result<Option<(libc::uid_t, libc::gid_t)>> {
    let Ok(cname) = CString::new(name) else { return Ok(None) };
    db_lookup(
        // SAFETY: getpwnam_r fills our record, keeping its strings in our buffer of buf.len()
        // bytes, and sets `found` to the record or to null.
        |rec, buf, found| unsafe { libc::getpwnam_r(cname.as_ptr(), rec, buf.as_mut_ptr(), buf.len(), found) },
        |pw: &libc::passwd| (pw.pw_uid, pw.pw_gid),
    )
}

/// A group's gid, `None` if there is no such group.
/// The primary group of the user with `uid`, if the user database has that user.
pub fn user_gid(uid: libc::uid_t) -> io::Result<Option<libc::gid_t>> {
    db_lookup(
        // SAFETY: as in user_ids, with getpwuid_r.
        |rec, buf, found| unsafe { libc::getpwuid_r(uid, rec, buf.as_mut_ptr(), buf.len(), found) },
        |pw: &libc::passwd| pw.pw_gid,
    )
}

pub fn group_id(name: &str) -> io::Result<Option<libc::gid_t>> {
    let Ok(cname) = CString::new(name) else { return Ok(None) };
    db_lookup(
        // SAFETY: as in user_ids, with getgrnam_r and a group record.
        |rec, buf, found| unsafe { libc::getgrnam_r(cname.as_ptr(), rec, buf.as_mut_ptr(), buf.len(), found) },
        |gr: &libc::group| gr.gr_gid,
    )
}

/// A group's name, `None` if there is no group `gid`.
pub fn group_name(gid: libc::gid_t) -> io::Result<Option<String>> {
    db_lookup(
        // SAFETY: as in user_ids, with getgrgid_r and a group record.
        |rec, buf, found| unsafe { libc::getgrgid_r(gid, rec, buf.as_mut_ptr(), buf.len(), found) },
        // SAFETY: gr_name is a NUL-terminated string in the lookup's buffer, alive during `read`.
        |gr: &libc::group| unsafe { CStr::from_ptr(gr.gr_name) }.to_string_lossy().into_owned(),
    )
}

/// Every group `user` belongs to, with `gid` (its primary group) among them.
pub fn group_list(user: &str, gid: libc::gid_t) -> io::Result<Vec<libc::gid_t>> {
    let cname = CString::new(user).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "user name with a NUL byte"))?;
    let mut n: libc::c_int = 64;
    loop {
        let mut groups = vec![0 as libc::gid_t; n as usize];
        let room = n;
        // SAFETY: `groups` has room for `n` entries; getgrouplist writes at most that many and
        // sets `n` to the number it found.
        let rc = unsafe { libc::getgrouplist(cname.as_ptr(), gid, groups.as_mut_ptr(), &mut n) };
        if rc >= 0 {
            groups.truncate(n.max(0) as usize);
            return Ok(groups);
        }
        n = if n > room { n } else { room * 2 };
        if n > 65536 {
            return Err(io::Error::other("too many groups"));
        }
    }
}

/// Makes this process the reaper of its orphaned descendants (PR_SET_CHILD_SUBREAPER).
pub fn become_subreaper() -> io::Result<()> {
    // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer by value.
    unsafe { syscall!(prctl(libc::PR_SET_CHILD_SUBREAPER, 1 as libc::c_ulong)) }?;
    Ok(())
}

/// Makes a command start as the leader of a new session (`setsid` between fork and exec), sent
/// `death_signal` when this process dies.
pub fn spawn_in_own_session(cmd: &mut std::process::Command, death_signal: libc::c_int) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and calls only setsid and prctl,
    // which are async-signal-safe and allocate nothing; it touches no state of the parent.
    unsafe {
        cmd.pre_exec(move || {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            libc::prctl(libc::PR_SET_PDEATHSIG, death_signal as libc::c_ulong);
            Ok(())
        });
    }
}

/// Puts this process in a new process group of its own (`setpgid(0, 0)`).
pub fn set_own_process_group() -> io::Result<()> {
    // SAFETY: setpgid takes no pointers.
    unsafe { syscall!(setpgid(0, 0)) }?;
    Ok(())
}

/// Asks the kernel to send `sig` to this process when its parent dies (PR_SET_PDEATHSIG).
pub fn set_parent_death_signal(sig: libc::c_int) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes the signal number by value.
    unsafe { syscall!(prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong)) }?;
    Ok(())
}

/// Sets this thread's name as `top` shows it (PR_SET_NAME: the first 15 bytes).
pub fn set_name(name: &str) -> io::Result<()> {
    let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: PR_SET_NAME copies at most 16 bytes from the NUL-terminated string.
    unsafe { syscall!(prctl(libc::PR_SET_NAME, c.as_ptr() as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong, 0 as libc::c_ulong)) }?;
    Ok(())
}

unsafe extern "C" {
    static mut environ: *mut *mut libc::c_char;
}

/// Shows `name` as the process's command line (`ps`) and name (`top`, 15 characters).
///
/// The command line is the memory between the kernel's `arg_start` and `env_end` (read from
/// `/proc/self/stat`): the environment strings are copied elsewhere first, then the whole area is
/// overwritten, so a long name is shown in full whatever the length of the original argv[0].
/// The command line is only rewritten in a single-threaded process (nothing may read the
/// environment meanwhile); otherwise only the name is set.
pub fn set_title(name: &str) {
    if CString::new(name).is_err() {
        return;
    }
    let _ = set_name(name);
    let Ok(f) = proc_stat_fields() else { return };
    // Field 48 is arg_start, field 51 env_end; field 20 the number of threads.
    let (arg_start, env_end) = (f.get(45).copied().unwrap_or(0) as usize, f.get(48).copied().unwrap_or(0) as usize);
    if arg_start == 0 || env_end <= arg_start || f.get(17) != Some(&1) {
        return;
    }
    // SAFETY: this is the only thread (checked above), so nothing reads the environment or the
    // argument strings meanwhile. Each environment string that lives in the area is replaced by
    // a heap copy (leaked: the environment lives as long as the process); only if every copy
    // succeeded is the area — which the kernel gave this process for its arguments and
    // environment, and which no Rust reference points into — overwritten within its bounds, its
    // last byte staying NUL so every string in it stays terminated.
    unsafe {
        let mut e = environ;
        while !e.is_null() && !(*e).is_null() {
            let p = *e as usize;
            if p >= arg_start && p < env_end {
                let copy = libc::strdup(*e);
                if copy.is_null() {
                    return;
                }
                *e = copy;
            }
            e = e.add(1);
        }
        let area = std::slice::from_raw_parts_mut(arg_start as *mut u8, env_end - arg_start);
        let bytes = name.as_bytes();
        let n = bytes.len().min(area.len() - 1);
        area[..n].copy_from_slice(&bytes[..n]);
        area[n..].fill(0);
    }
}

/// Makes `dir` this process's root directory and goes to its top (`chroot` then `chdir("/")`).
pub fn chroot(dir: &str) -> io::Result<()> {
    let c = CString::new(dir).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: c is a NUL-terminated path that lives for the call.
    unsafe { syscall!(chroot(c.as_ptr())) }?;
    std::env::set_current_dir("/")
}

/// Sets this process's scheduling priority (nice value, -20 ..= 19).
pub fn set_priority(prio: i32) -> io::Result<()> {
    // SAFETY: setpriority takes no pointers.
    unsafe { syscall!(setpriority(libc::PRIO_PROCESS, 0, prio)) }?;
    Ok(())
}

/// A resource limit of this process (`setrlimit`): `soft` is enforced, `hard` is the ceiling.
pub fn set_limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit { rlim_cur: soft as libc::rlim_t, rlim_max: hard.max(soft) as libc::rlim_t };
    // SAFETY: setrlimit reads the struct we pass for the duration of the call.
    unsafe { syscall!(setrlimit(resource, &lim)) }?;
    Ok(())
}

/// This process's memory in bytes as the kernel limits it: (address space, as RLIMIT_AS
/// counts it; data, as RLIMIT_DATA counts it), from `/proc/self/statm`.
pub fn memory_sizes() -> io::Result<(u64, u64)> {
    let statm = std::fs::read_to_string("/proc/self/statm")?;
    let f: Vec<u64> = statm.split_whitespace().map(|x| x.parse().unwrap_or(0)).collect();
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    match (f.first(), f.get(5)) {
        (Some(size), Some(data)) => Ok((size * page, data * page)),
        _ => Err(io::Error::other("unreadable /proc/self/statm")),
    }
}

/// Sets the file mode creation mask; returns the previous one.
pub fn umask(mask: libc::mode_t) -> libc::mode_t {
    // SAFETY: umask takes no pointers and cannot fail.
    unsafe { libc::umask(mask) }
}

/// Sets an environment variable; refused (with an error) unless this process has a single
/// thread, as nothing may read the environment meanwhile.
pub fn set_env(key: &str, value: &str) -> io::Result<()> {
    if key.is_empty() || key.contains(['=', '\0']) || value.contains('\0') {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    require_single_thread("change the environment")?;
    // SAFETY: this is the only thread (checked above), so nothing reads or writes the
    // environment concurrently; key and value were checked as set_var requires.
    unsafe { std::env::set_var(key, value) };
    Ok(())
}

/// `setlocale(LC_ALL, locale)`; refused unless this process has a single thread (setlocale is
/// not thread-safe). An unknown locale is an error of kind NotFound.
pub fn set_locale_all(locale: &str) -> io::Result<()> {
    let c = CString::new(locale).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    require_single_thread("change the locale")?;
    // SAFETY: this is the only thread (checked above); setlocale reads the NUL-terminated name.
    if unsafe { libc::setlocale(libc::LC_ALL, c.as_ptr()) }.is_null() {
        return Err(io::Error::from(io::ErrorKind::NotFound));
    }
    Ok(())
}

/// CPU time used so far, as (user, system) seconds: of the calling thread (`RUSAGE_THREAD`) or
/// of the whole process (`RUSAGE_SELF`). Zeros if the kernel refuses (it does not on Linux).
pub fn cpu_times(thread_only: bool) -> (f64, f64) {
    let who = if thread_only { libc::RUSAGE_THREAD } else { libc::RUSAGE_SELF };
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage into the buffer we own; on failure it is not read.
    if unsafe { libc::getrusage(who, ru.as_mut_ptr()) } != 0 {
        return (0.0, 0.0);
    }
    // SAFETY: getrusage succeeded, so the struct is initialised (and was zeroed before).
    let ru = unsafe { ru.assume_init() };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// The peak resident set size of this process so far, in bytes (`ru_maxrss`).
pub fn peak_rss() -> u64 {
    let mut ru = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: as in `cpu_times`.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, ru.as_mut_ptr()) } != 0 {
        return 0;
    }
    // SAFETY: getrusage succeeded.
    let ru = unsafe { ru.assume_init() };
    // Linux reports kilobytes.
    (ru.ru_maxrss.max(0) as u64) * 1024
}

/// The current resident set size of this process, in bytes (`/proc/self/statm`); 0 if unreadable.
pub fn current_rss() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_is_refused_with_threads() {
        // The test harness runs tests on threads: this process has more than one.
        let t = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_millis(200)));
        let e = fork([], |[]| -> Infallible { exit_now(0) }).unwrap_err();
        assert!(e.to_string().contains("threads"), "{e}");
        assert!(set_env("MOD_WSGI_SYS_TEST", "1").is_err());
        assert!(set_locale_all("C").is_err());
        t.join().unwrap();
    }

    #[test]
    fn users_and_ids() {
        assert_eq!(user_ids("root").unwrap(), Some((0, 0)));
        assert_eq!(user_ids("no-such-user-here").unwrap(), None);
        assert_eq!(user_ids("a\0b").unwrap(), None);
        assert_eq!(group_id("root").unwrap(), Some(0));
        assert_eq!(group_id("no-such-group-here").unwrap(), None);
        assert!(parent_pid() > 0);
        let _ = (uid(), gid(), euid(), egid());
        assert!(kill(0, 0).is_err());
        assert!(kill(-1, 0).is_err());
        kill(std::process::id() as pid_t, 0).unwrap();
    }

    #[test]
    fn resource_usage() {
        // Burn CPU on this thread until its counters move (they may move in clock ticks).
        let start = std::time::Instant::now();
        let mut x = 0u64;
        while cpu_times(true) == (0.0, 0.0) && start.elapsed() < std::time::Duration::from_secs(5) {
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
            }
        }
        let (tu, ts) = cpu_times(true);
        let (pu, ps) = cpu_times(false);
        assert!(tu + ts > 0.0 && pu + ps >= tu + ts - 0.01, "thread {tu}+{ts}, process {pu}+{ps}");
        let (cur, peak) = (current_rss(), peak_rss());
        assert!(cur > 1 << 20 && peak >= cur / 2, "rss {cur}, peak {peak}");
    }
}

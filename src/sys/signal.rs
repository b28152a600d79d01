//! Signal dispositions and masks.

use std::io;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

/// The flag the handler sets; only ever a pointer made from a `&'static AtomicBool`.
static FLAG: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());

extern "C" fn set_flag(_: libc::c_int) {
    let p = FLAG.load(Ordering::SeqCst);
    if !p.is_null() {
        // SAFETY: FLAG only holds pointers made from `&'static AtomicBool` (see set_flag_on), so
        // p is valid for ever; an atomic store is async-signal-safe.
        unsafe { (*p).store(true, Ordering::SeqCst) };
    }
}

/// Makes each of `signals` set `flag` (SA_RESTART, nothing extra blocked in the handler). The
/// handler only stores to the atomic, which is async-signal-safe. One flag per process: a later
/// call replaces it for every signal installed this way (use [`record_on`] to tell signals
/// apart).
pub fn set_flag_on(signals: &[libc::c_int], flag: &'static AtomicBool) -> io::Result<()> {
    FLAG.store((flag as *const AtomicBool).cast_mut(), Ordering::SeqCst);
    install(signals, set_flag)
}

/// Installs `handler` for each of `signals` (SA_RESTART, nothing extra blocked). Only for the
/// handlers of this module, which do nothing but atomic operations (async-signal-safe) and
/// never unwind.
fn install(signals: &[libc::c_int], handler: extern "C" fn(libc::c_int)) -> io::Result<()> {
    // SAFETY: sigaction is plain data; all-zero is a valid value, the fields that matter are set
    // below.
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = handler as libc::sighandler_t;
    sa.sa_flags = libc::SA_RESTART;
    sa.sa_mask = SigSet::empty().0;
    for &sig in signals {
        // SAFETY: sigaction reads our sigaction struct; the handler is one of this module's,
        // async-signal-safe as said above.
        unsafe { syscall!(sigaction(sig, &sa, std::ptr::null_mut())) }?;
    }
    Ok(())
}

/// Signals received (one bit per signal number below 32) by handlers [`record_on`] installed.
static RECORDED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

extern "C" fn record(sig: libc::c_int) {
    if (0..32).contains(&sig) {
        RECORDED.fetch_or(1 << sig, Ordering::SeqCst);
    }
}

/// Makes each of `signals` be recorded (SA_RESTART) for [`take_recorded`] to tell them apart.
pub fn record_on(signals: &[libc::c_int]) -> io::Result<()> {
    install(signals, record)
}

/// The signals recorded since the last call, in numeric order.
pub fn take_recorded() -> Vec<libc::c_int> {
    let bits = RECORDED.swap(0, Ordering::SeqCst);
    (0..32).filter(|s| bits & (1 << s) != 0).collect()
}

fn set_disposition(sig: libc::c_int, disposition: libc::sighandler_t) -> io::Result<()> {
    // SAFETY: SIG_IGN and SIG_DFL are not handlers: no code of ours runs on the signal.
    if unsafe { libc::signal(sig, disposition) } == libc::SIG_ERR {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Ignores `sig` (`signal(sig, SIG_IGN)`).
pub fn ignore(sig: libc::c_int) -> io::Result<()> {
    set_disposition(sig, libc::SIG_IGN)
}

/// Restores the default action of `sig` (`signal(sig, SIG_DFL)`).
pub fn set_default(sig: libc::c_int) -> io::Result<()> {
    set_disposition(sig, libc::SIG_DFL)
}

/// A set of signals.
#[derive(Clone, Copy)]
pub struct SigSet(libc::sigset_t);

impl SigSet {
    pub fn empty() -> SigSet {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises the set we pass (it cannot fail for a valid pointer).
        unsafe {
            libc::sigemptyset(set.as_mut_ptr());
            SigSet(set.assume_init())
        }
    }

    pub fn of(signals: &[libc::c_int]) -> io::Result<SigSet> {
        let mut set = SigSet::empty();
        for &sig in signals {
            // SAFETY: sigaddset updates our initialised set (EINVAL for a bad signal number).
            unsafe { syscall!(sigaddset(&mut set.0, sig)) }?;
        }
        Ok(set)
    }
}

/// Sets the signal mask of the calling thread (`sigprocmask(SIG_SETMASK)`, as a single-threaded
/// process uses it).
pub fn set_process_mask(set: &SigSet) -> io::Result<()> {
    // SAFETY: sigprocmask reads our set and writes no old set.
    unsafe { syscall!(sigprocmask(libc::SIG_SETMASK, &set.0, std::ptr::null_mut())) }?;
    Ok(())
}

fn thread_mask(how: libc::c_int, set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: pthread_sigmask reads our set and writes the previous mask into `old`.
    let rc = unsafe { libc::pthread_sigmask(how, &set.0, &mut old.0) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(old)
}

/// Restores the calling thread's previous signal mask when dropped (on the same thread: the
/// guard cannot be sent elsewhere).
pub struct ThreadMaskGuard {
    old: SigSet,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ThreadMaskGuard {
    fn drop(&mut self) {
        let _ = thread_mask(libc::SIG_SETMASK, &self.old);
    }
}

/// Blocks `signals` in the calling thread (threads it starts meanwhile inherit the mask) until
/// the guard is dropped.
pub fn block_in_this_thread(signals: &[libc::c_int]) -> io::Result<ThreadMaskGuard> {
    let old = thread_mask(libc::SIG_BLOCK, &SigSet::of(signals)?)?;
    Ok(ThreadMaskGuard { old, _not_send: PhantomData })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocked_now(sig: libc::c_int) -> bool {
        let cur = thread_mask(libc::SIG_BLOCK, &SigSet::empty()).unwrap();
        // SAFETY: sigismember reads our initialised set.
        unsafe { libc::sigismember(&cur.0, sig) == 1 }
    }

    #[test]
    fn thread_mask_is_restored() {
        std::thread::spawn(|| {
            assert!(!blocked_now(libc::SIGUSR2));
            let g = block_in_this_thread(&[libc::SIGUSR2]).unwrap();
            assert!(blocked_now(libc::SIGUSR2));
            let inherited = std::thread::spawn(|| blocked_now(libc::SIGUSR2)).join().unwrap();
            assert!(inherited);
            drop(g);
            assert!(!blocked_now(libc::SIGUSR2));
        })
        .join()
        .unwrap();
        assert!(SigSet::of(&[100_000]).is_err());
    }

    #[test]
    fn flag_is_set_by_the_signal() {
        static F: AtomicBool = AtomicBool::new(false);
        // SIGURG is ignored by default: nothing else in the test process cares about it.
        set_flag_on(&[libc::SIGURG], &F).unwrap();
        // SAFETY: raise sends SIGURG to this thread; the handler only sets F.
        unsafe { libc::raise(libc::SIGURG) };
        assert!(F.load(Ordering::SeqCst));
        set_default(libc::SIGURG).unwrap();
        ignore(libc::SIGURG).unwrap();
        set_default(libc::SIGURG).unwrap();
    }
}

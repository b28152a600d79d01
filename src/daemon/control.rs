//! When a daemon process should stop taking requests, and why (pure Rust, unit-tested).

use std::time::{Duration, Instant};

/// Why a daemon process restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartReason {
    ScriptTouched(String),
    MaximumRequests(u64),
    RestartInterval(Duration),
    InactivityTimeout(Duration),
    RequestTimeout(Duration),
    /// A request was interrupted (mod_wsgi.RequestTimeout injected) and its thread had not
    /// returned this long after.
    InterruptTimeout(Duration),
    /// memory-limit= (data size) or virtual-memory-limit= (address space) nearly reached.
    MemoryLimit { option: &'static str, limit: u64, used: u64 },
    /// cpu-time-limit= reached (SIGXCPU).
    CpuTimeLimit(Duration),
    /// SIGUSR2: replace this process, waiting eviction-timeout for its running requests.
    Evicted,
    /// startup-timeout=: scripts kept failing to load for this long.
    StartupTimeout(Duration),
    Shutdown,
}

impl std::fmt::Display for RestartReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RestartReason::ScriptTouched(p) => write!(f, "script file '{p}' was modified"),
            RestartReason::MaximumRequests(n) => write!(f, "maximum requests reached ({n})"),
            RestartReason::RestartInterval(d) => write!(f, "restart interval of {}s expired", d.as_secs()),
            RestartReason::InactivityTimeout(d) => write!(f, "inactivity timeout of {}s expired", d.as_secs()),
            RestartReason::RequestTimeout(d) => write!(f, "a request ran longer than the request timeout of {}s", d.as_secs()),
            RestartReason::InterruptTimeout(d) => write!(f, "a request interrupted for running past its request timeout had not returned {}s later (interrupt-timeout)", d.as_secs()),
            RestartReason::MemoryLimit { option, limit, used } => write!(
                f,
                "{option}={limit} nearly reached ({used} bytes in use, recycled at {}%)",
                MEMORY_RECYCLE_PERCENT
            ),
            RestartReason::CpuTimeLimit(d) => write!(f, "cpu-time-limit of {}s of CPU time reached", d.as_secs()),
            RestartReason::Evicted => write!(f, "evicted (SIGUSR2)"),
            RestartReason::StartupTimeout(d) => write!(f, "no script loaded successfully for {}s after a failure (startup-timeout)", d.as_secs()),
            RestartReason::Shutdown => write!(f, "shutdown requested"),
        }
    }
}

/// A process is recycled once its memory reaches this share of memory-limit= or
/// virtual-memory-limit= (the kernel refuses allocations past the limit itself: MemoryError).
pub const MEMORY_RECYCLE_PERCENT: u64 = 80;

/// Whether memory use (address space, data) calls for a restart under the group's limits.
/// `baseline` is the use of a fresh process (after start-up): a process is only recycled once
/// it has also grown past half of the room the limit left it, so that a limit that start-up
/// nearly fills cannot make every new process restart at once.
pub fn memory_check(memory_limit: Option<u64>, virtual_memory_limit: Option<u64>, (space, data): (u64, u64), baseline: (u64, u64)) -> Option<RestartReason> {
    let over = |limit: u64, used: u64, base: u64| {
        let share = limit / 100 * MEMORY_RECYCLE_PERCENT + limit % 100 * MEMORY_RECYCLE_PERCENT / 100;
        let grown = base.saturating_add(limit.saturating_sub(base) / 2);
        used >= share.max(grown)
    };
    if let Some(limit) = memory_limit.filter(|l| over(*l, data, baseline.1)) {
        return Some(RestartReason::MemoryLimit { option: "memory-limit", limit, used: data });
    }
    if let Some(limit) = virtual_memory_limit.filter(|l| over(*l, space, baseline.0)) {
        return Some(RestartReason::MemoryLimit { option: "virtual-memory-limit", limit, used: space });
    }
    None
}

impl RestartReason {
    /// The `shutdown_reason` of the `process_stopping` event (mod_wsgi's names).
    pub fn shutdown_reason(&self) -> &'static str {
        match self {
            RestartReason::ScriptTouched(_) => "script_reload",
            RestartReason::MaximumRequests(_) => "maximum_requests",
            RestartReason::RestartInterval(_) => "restart_interval",
            RestartReason::InactivityTimeout(_) => "inactivity_timeout",
            RestartReason::RequestTimeout(_) => "request_timeout",
            RestartReason::InterruptTimeout(_) => "interrupt_timeout",
            RestartReason::MemoryLimit { .. } => "memory_limit",
            RestartReason::CpuTimeLimit(_) => "cpu_time_limit",
            RestartReason::Evicted => "eviction",
            RestartReason::StartupTimeout(_) => "startup_timeout",
            RestartReason::Shutdown => "shutdown_signal",
        }
    }
}

/// The limits of one daemon group that cause restarts.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub maximum_requests: u64,
    pub restart_interval: Option<Duration>,
    pub inactivity_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    /// How long a request interrupted at its request timeout may take to return before the
    /// process restarts; `None`: no interruption, the process restarts at the request timeout.
    pub interrupt_timeout: Option<Duration>,
    /// Request threads of the process (the request timeout grows with them, see [`fire_point`]).
    pub threads: usize,
}

/// When a request counts as stuck, as with mod_wsgi 6: `request_timeout * (1 + ln(threads))`,
/// each request judged on its own. One thread: the request timeout itself; more threads grant
/// more patience, growing slower than their number (2 threads: 1.69x, 10: 3.3x, 25: 4.2x).
pub fn fire_point(request_timeout: Duration, threads: usize) -> Duration {
    request_timeout.mul_f64(1.0 + (threads.max(1) as f64).ln())
}

/// A request running now, for [`check`] and [`to_interrupt`].
#[derive(Debug, Clone)]
pub struct RunningRequest {
    pub id: u64,
    pub started: Instant,
    /// When it was interrupted (mod_wsgi.RequestTimeout sent to its thread).
    pub interrupted: Option<Instant>,
}

/// A snapshot of a process's activity, for [`check`].
#[derive(Debug, Clone)]
pub struct Activity {
    pub started: Instant,
    pub served: u64,
    pub active: usize,
    pub last_activity: Instant,
    /// The requests running now.
    pub running: Vec<RunningRequest>,
}

/// Decides whether the process should restart now.
pub fn check(limits: &Limits, a: &Activity, now: Instant) -> Option<RestartReason> {
    if limits.maximum_requests > 0 && a.served >= limits.maximum_requests {
        return Some(RestartReason::MaximumRequests(limits.maximum_requests));
    }
    if let Some(t) = limits.request_timeout {
        let fire = fire_point(t, limits.threads);
        for r in a.running.iter().filter(|r| now.saturating_duration_since(r.started) >= fire) {
            match (limits.interrupt_timeout, r.interrupted) {
                (None, _) => return Some(RestartReason::RequestTimeout(t)),
                (Some(grace), Some(at)) if now.saturating_duration_since(at) >= grace => {
                    return Some(RestartReason::InterruptTimeout(grace));
                }
                _ => {}
            }
        }
    }
    if let Some(t) = limits.restart_interval {
        if now.duration_since(a.started) >= t {
            return Some(RestartReason::RestartInterval(t));
        }
    }
    if let Some(t) = limits.inactivity_timeout {
        if a.active == 0 && now.duration_since(a.last_activity) >= t {
            return Some(RestartReason::InactivityTimeout(t));
        }
    }
    None
}

/// The requests to interrupt now: past the request timeout, not interrupted yet, when the
/// process interrupts stuck requests (interrupt-timeout) instead of restarting at once.
pub fn to_interrupt(limits: &Limits, a: &Activity, now: Instant) -> Vec<u64> {
    let (Some(t), Some(_)) = (limits.request_timeout, limits.interrupt_timeout) else { return Vec::new() };
    let fire = fire_point(t, limits.threads);
    a.running
        .iter()
        .filter(|r| r.interrupted.is_none() && now.saturating_duration_since(r.started) >= fire)
        .map(|r| r.id)
        .collect()
}

/// Delay before starting a process again after `failures` consecutive failed starts:
/// nothing for the first, then 1 s doubling up to 30 s.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    Duration::from_secs((1u64 << (failures - 1).min(5)).min(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(now: Instant) -> Activity {
        Activity { started: now, served: 0, active: 0, last_activity: now, running: Vec::new() }
    }

    #[test]
    fn memory_limits_recycle_at_their_share() {
        let fresh = (0, 0);
        assert_eq!(memory_check(None, None, (u64::MAX, u64::MAX), fresh), None);
        assert_eq!(memory_check(Some(1000), None, (10_000, 799), fresh), None);
        assert_eq!(
            memory_check(Some(1000), None, (10_000, 800), fresh),
            Some(RestartReason::MemoryLimit { option: "memory-limit", limit: 1000, used: 800 })
        );
        assert_eq!(memory_check(Some(1000), Some(20_000), (15_999, 10), fresh), None);
        // Start-up already used 900 of 1000: recycled only past 950, never at once.
        assert_eq!(memory_check(Some(1000), None, (0, 900), (0, 900)), None);
        assert_eq!(memory_check(Some(1000), None, (0, 949), (0, 900)), None);
        assert!(memory_check(Some(1000), None, (0, 950), (0, 900)).is_some());
        assert!(memory_check(Some(u64::MAX), None, (0, u64::MAX), fresh).is_some());
        let r = memory_check(Some(1000), Some(20_000), (16_000, 10), fresh).unwrap();
        assert!(r.to_string().starts_with("virtual-memory-limit=20000 nearly reached (16000 bytes in use"), "{r}");
    }

    #[test]
    fn no_limits_never_restart() {
        let now = Instant::now();
        assert_eq!(check(&Limits::default(), &idle(now), now + Duration::from_secs(1_000_000)), None);
    }

    #[test]
    fn maximum_requests() {
        let now = Instant::now();
        let l = Limits { maximum_requests: 3, ..Default::default() };
        let mut a = idle(now);
        a.served = 2;
        assert_eq!(check(&l, &a, now), None);
        a.served = 3;
        assert_eq!(check(&l, &a, now), Some(RestartReason::MaximumRequests(3)));
    }

    #[test]
    fn request_timeout_only_counts_running_requests() {
        let now = Instant::now();
        let l = Limits { request_timeout: Some(Duration::from_secs(5)), threads: 1, ..Default::default() };
        let mut a = idle(now);
        assert_eq!(check(&l, &a, now + Duration::from_secs(60)), None);
        a.running.push(RunningRequest { id: 1, started: now, interrupted: None });
        assert_eq!(check(&l, &a, now + Duration::from_secs(4)), None);
        assert!(matches!(check(&l, &a, now + Duration::from_secs(5)), Some(RestartReason::RequestTimeout(_))));
        assert!(to_interrupt(&l, &a, now + Duration::from_secs(5)).is_empty(), "no interrupt-timeout: no interruption");
    }

    #[test]
    fn request_timeout_grows_with_the_log_of_threads() {
        let s = Duration::from_secs;
        assert_eq!(fire_point(s(2), 1), s(2));
        assert_eq!(fire_point(s(2), 0), s(2));
        let two = fire_point(s(2), 2).as_secs_f64();
        assert!((two - 2.0 * (1.0 + 2f64.ln())).abs() < 1e-6, "{two}");
        let ten = fire_point(s(10), 10).as_secs_f64();
        assert!((32.0..34.0).contains(&ten), "{ten}");
        let now = Instant::now();
        let l = Limits { request_timeout: Some(s(2)), threads: 2, ..Default::default() };
        let mut a = idle(now);
        a.running.push(RunningRequest { id: 1, started: now, interrupted: None });
        assert_eq!(check(&l, &a, now + Duration::from_millis(3300)), None);
        assert_eq!(check(&l, &a, now + Duration::from_millis(3400)), Some(RestartReason::RequestTimeout(s(2))));
    }

    #[test]
    fn interrupt_first_then_restart_after_interrupt_timeout() {
        let s = Duration::from_secs;
        let now = Instant::now();
        let l = Limits { request_timeout: Some(s(5)), interrupt_timeout: Some(s(3)), threads: 1, ..Default::default() };
        let mut a = idle(now);
        a.running.push(RunningRequest { id: 7, started: now, interrupted: None });
        a.running.push(RunningRequest { id: 8, started: now + s(4), interrupted: None });
        assert!(to_interrupt(&l, &a, now + s(4)).is_empty());
        // Past the request timeout: interrupted, not restarted.
        assert_eq!(to_interrupt(&l, &a, now + s(5)), [7]);
        assert_eq!(check(&l, &a, now + s(5)), None);
        a.running[0].interrupted = Some(now + s(5));
        assert!(to_interrupt(&l, &a, now + s(6)).is_empty(), "interrupted once");
        assert_eq!(check(&l, &a, now + s(7)), None, "within interrupt-timeout");
        // Each request on its own clock.
        assert_eq!(to_interrupt(&l, &a, now + s(9)), [8]);
        // Not returned within interrupt-timeout: restart.
        assert_eq!(check(&l, &a, now + s(8)), Some(RestartReason::InterruptTimeout(s(3))));
        // A request that returned is gone from the list: nothing to do.
        a.running.remove(0);
        assert_eq!(check(&l, &a, now + s(8)), None);
    }

    #[test]
    fn inactivity_waits_for_idle() {
        let now = Instant::now();
        let l = Limits { inactivity_timeout: Some(Duration::from_secs(10)), ..Default::default() };
        let mut a = idle(now);
        a.active = 1;
        assert_eq!(check(&l, &a, now + Duration::from_secs(11)), None);
        a.active = 0;
        assert!(matches!(check(&l, &a, now + Duration::from_secs(11)), Some(RestartReason::InactivityTimeout(_))));
    }

    #[test]
    fn restart_interval() {
        let now = Instant::now();
        let l = Limits { restart_interval: Some(Duration::from_secs(30)), ..Default::default() };
        assert_eq!(check(&l, &idle(now), now + Duration::from_secs(29)), None);
        assert!(check(&l, &idle(now), now + Duration::from_secs(30)).is_some());
    }

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff(0), Duration::ZERO);
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(50), Duration::from_secs(30));
    }
}

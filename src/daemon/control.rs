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
            RestartReason::Shutdown => write!(f, "shutdown requested"),
        }
    }
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
}

/// A snapshot of a process's activity, for [`check`].
#[derive(Debug, Clone)]
pub struct Activity {
    pub started: Instant,
    pub served: u64,
    pub active: usize,
    pub last_activity: Instant,
    /// Start of the oldest request still running.
    pub oldest_running: Option<Instant>,
}

/// Decides whether the process should restart now.
pub fn check(limits: &Limits, a: &Activity, now: Instant) -> Option<RestartReason> {
    if limits.maximum_requests > 0 && a.served >= limits.maximum_requests {
        return Some(RestartReason::MaximumRequests(limits.maximum_requests));
    }
    if let Some(t) = limits.request_timeout {
        if a.oldest_running.is_some_and(|s| now.duration_since(s) >= t) {
            return Some(RestartReason::RequestTimeout(t));
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
        Activity { started: now, served: 0, active: 0, last_activity: now, oldest_running: None }
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
        let l = Limits { request_timeout: Some(Duration::from_secs(5)), ..Default::default() };
        let mut a = idle(now);
        assert_eq!(check(&l, &a, now + Duration::from_secs(60)), None);
        a.oldest_running = Some(now);
        assert_eq!(check(&l, &a, now + Duration::from_secs(4)), None);
        assert!(matches!(check(&l, &a, now + Duration::from_secs(5)), Some(RestartReason::RequestTimeout(_))));
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

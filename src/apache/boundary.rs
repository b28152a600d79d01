//! The FFI boundary: every function Apache calls runs its body through [`no_panic`], so that no
//! Rust panic ever unwinds into C.

/// The message a panic was raised with.
fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// Runs `f`; if it panics, returns `on_panic(message)` instead of unwinding.
pub fn no_panic<T>(f: impl FnOnce() -> T, on_panic: impl FnOnce(String) -> T) -> T {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(v) => v,
        Err(p) => on_panic(panic_message(p.as_ref())),
    }
}

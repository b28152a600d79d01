//! `mod_wsgi.server_metrics()`: a copy of Apache's scoreboard (the shared memory every Apache
//! process writes its workers' states into, as mod_status shows them), read in an Apache child
//! or in a daemon process (forked from the Apache parent after the scoreboard was made).

use super::ffi;
use crate::wsgi::metrics::{ProcessSnapshot, ServerSnapshot, WorkerSnapshot, status_letter};

fn secs(t: ffi::apr_time_t) -> f64 {
    t as f64 / 1_000_000.0
}

/// A C string kept in a fixed array: up to the first NUL, lossily as UTF-8.
fn text(chars: &[std::os::raw::c_char]) -> String {
    let bytes: Vec<u8> = chars.iter().take_while(|c| **c != 0).map(|c| *c as u8).collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn worker(w: &ffi::worker_score) -> WorkerSnapshot {
    WorkerSnapshot {
        thread_num: i64::from(w.thread_num),
        generation: i64::from(w.generation),
        status: status_letter(w.status),
        access_count: w.access_count as i64,
        bytes_served: w.bytes_served,
        start_time: secs(w.start_time),
        stop_time: secs(w.stop_time),
        last_used: secs(w.last_used),
        // Apache 2.4.71 keeps the full client address in client64 (client is cut at 32 bytes).
        client: if w.client64[0] != 0 { text(&w.client64) } else { text(&w.client) },
        request: text(&w.request),
        vhost: text(&w.vhost),
    }
}

/// The scoreboard now, or None when this process has none.
pub fn snapshot() -> Option<ServerSnapshot> {
    // SAFETY: ap_exists_scoreboard_image only reads Apache's global pointer.
    if unsafe { ffi::ap_exists_scoreboard_image() } == 0 {
        return None;
    }
    // SAFETY: the image exists (checked above) and stays mapped for the life of this process.
    // Apache's own accessors index it with the record sizes and limits of the running server
    // and return NULL out of range. Other processes write the records as we read: each is
    // copied with one volatile read, and a value torn by a concurrent update is only a stale
    // number in a metrics report.
    unsafe {
        let g = ffi::ap_get_scoreboard_global();
        if g.is_null() {
            return None;
        }
        let g = std::ptr::read_volatile(g);
        let (servers, threads) = (g.server_limit.max(0), g.thread_limit.max(0));
        let mut processes = Vec::with_capacity(servers as usize);
        for i in 0..servers {
            let p = ffi::ap_get_scoreboard_process(i);
            if p.is_null() {
                break;
            }
            let p = std::ptr::read_volatile(p);
            let mut workers = Vec::with_capacity(threads as usize);
            for j in 0..threads {
                let w = ffi::ap_get_scoreboard_worker_from_indexes(i, j);
                if w.is_null() {
                    break;
                }
                workers.push(worker(&std::ptr::read_volatile(w)));
            }
            processes.push(ProcessSnapshot {
                process_num: i64::from(i),
                pid: i64::from(p.pid),
                generation: i64::from(p.generation),
                quiescing: p.quiescing != 0,
                workers,
            });
        }
        Some(ServerSnapshot {
            server_limit: i64::from(g.server_limit),
            thread_limit: i64::from(g.thread_limit),
            running_generation: i64::from(g.running_generation),
            restart_time: secs(g.restart_time),
            current_time: secs(ffi::apr_time_now()),
            processes,
        })
    }
}

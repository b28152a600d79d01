//! `mod_wsgi.server_metrics()` in an Apache child: a copy of Apache's scoreboard (the shared
//! memory every Apache process writes its workers' states into, as mod_status shows them).

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
    // SAFETY: the image exists (checked above) and stays mapped for the life of this child. Its
    // global record, its server_limit process records and server_limit x thread_limit worker
    // records are what Apache allocated for those limits. Other processes write them as we
    // read: each record is copied with one volatile read, and a value torn by a concurrent
    // update is only a stale number in a metrics report.
    unsafe {
        let sb = std::ptr::read_volatile(&raw const ffi::ap_scoreboard_image);
        if sb.is_null() || (*sb).global.is_null() || (*sb).parent.is_null() || (*sb).servers.is_null() {
            return None;
        }
        let g = std::ptr::read_volatile((*sb).global);
        let (servers, threads) = (g.server_limit.max(0) as usize, g.thread_limit.max(0) as usize);
        let mut processes = Vec::with_capacity(servers);
        for i in 0..servers {
            let p = std::ptr::read_volatile((*sb).parent.add(i));
            let row = *(*sb).servers.add(i);
            let workers = if row.is_null() {
                Vec::new()
            } else {
                (0..threads).map(|j| worker(&std::ptr::read_volatile(row.add(j)))).collect()
            };
            processes.push(ProcessSnapshot {
                process_num: i as i64,
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

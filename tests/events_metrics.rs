//! mod_wsgi's events and metrics API (`mod_wsgi.subscribe_events`, `request_data()`,
//! `active_requests`, `process_metrics()`, `start_recording_metrics()`, `request_metrics()`,
//! `subscribe_shutdown`) against a real Apache under each MPM, in embedded mode and in daemon
//! mode (`mode_suite!`, tests/common/mode.rs). Each server has one Apache child (and, in daemon
//! mode, one daemon process), so every request of a test sees the same Python state.
//!
//! The applications check what Python sees and answer `name: value` lines; the tests read them.

mod common;

use common::mode::*;
use common::*;
use std::time::Duration;

/// Subscribes at import, records what the events carry, and answers on a few paths.
const EVENTS_APP: &str = r#"
import json, os, sys, atexit
import mod_wsgi

mod_wsgi.start_recording_metrics()

LOG = []        # event names, in order
FINISHED = []   # the request_finished events (request_data copied)
EXCEPTIONS = []
RESPONSES = []

def handler(name, **event):
    LOG.append(name)
    if name == 'request_started':
        data = event['request_data']
        data['started_by'] = 'handler'
        data['script_name'] = event['request_environ'].get('SCRIPT_NAME')
        data['path'] = event['request_environ'].get('PATH_INFO')
        data['started_keys'] = sorted(k for k in event if k != 'request_data')
        app = event['application_object']
        def wrapped(environ, start_response):
            environ['events.wrapped'] = 'yes'
            return app(environ, start_response)
        return {'application_object': wrapped}
    if name == 'response_started':
        RESPONSES.append((event['response_status'], event['response_headers'], event['exception_info']))
    if name == 'request_exception':
        EXCEPTIONS.append(repr(event['exception_info'][1]))
    if name == 'request_finished':
        e = dict(event)
        e['request_data'] = dict(e['request_data'])
        FINISHED.append(e)

assert mod_wsgi.subscribe_events(handler) is handler
assert mod_wsgi.event_callbacks == [handler]

try:
    mod_wsgi.request_data()
    IMPORT_REQUEST_DATA = 'no error'
except RuntimeError:
    IMPORT_REQUEST_DATA = 'RuntimeError'

def on_stop(name, **event):
    print('EVENTS-STOP %s %s %s' % (name, event.get('shutdown_reason'), os.getpid()), file=sys.stderr)

assert mod_wsgi.subscribe_shutdown(on_stop) is on_stop

@atexit.register
def at_exit():
    print('EVENTS-ATEXIT %s' % os.getpid(), file=sys.stderr)

REQUIRED_FINISHED = ['request_data', 'request_id', 'thread_id', 'request_start', 'queue_start',
    'daemon_start', 'application_start', 'application_finish', 'application_time', 'input_reads',
    'input_length', 'input_time', 'output_length', 'output_writes', 'output_time', 'status',
    'cpu_user_time', 'cpu_system_time', 'gil_wait_time', 'gil_wait_count']
REQUIRED_PROCESS = ['pid', 'request_count', 'request_busy_time', 'current_time', 'running_time',
    'restart_time', 'cpu_user_time', 'cpu_system_time', 'memory_max_rss', 'memory_rss',
    'request_threads', 'active_requests', 'threads']
REQUIRED_REQUEST = ['start_time', 'stop_time', 'sample_period', 'request_count',
    'request_throughput', 'capacity_utilization', 'server_time', 'application_time',
    'server_time_buckets', 'application_time_buckets', 'queue_time', 'queue_time_buckets',
    'daemon_time', 'daemon_time_buckets', 'gil_wait_time', 'gil_wait_time_buckets',
    'gil_wait_count', 'input_read_time', 'input_read_time_buckets', 'output_write_time',
    'output_write_time_buckets', 'input_bytes', 'input_reads', 'output_bytes', 'output_writes',
    'request_threads', 'cpu_user_time', 'cpu_system_time', 'memory_rss']

def lines(start_response, pairs):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [''.join('%s: %s\n' % (k, v) for k, v in pairs).encode()]

def finished_for(request_id):
    for e in FINISHED:
        if e['request_id'] == request_id:
            return e
    return None

def application(environ, start_response):
    path = environ.get('PATH_INFO', '')
    if path == '/hello':
        mod_wsgi.request_data()['app'] = 'yes'
        body = environ['wsgi.input'].read()
        start_response('200 OK', [('Content-Type', 'text/plain'), ('X-Request-Id', environ['mod_wsgi.request_id'])])
        return [b'hello ', body]
    if path == '/raise':
        raise ValueError('boom-from-app')
    if path == '/event':
        e = finished_for(environ['HTTP_X_ID'])
        if e is None:
            return lines(start_response, [('found', False)])
        data = e['request_data']
        return lines(start_response, [
            ('found', True),
            ('missing', [k for k in REQUIRED_FINISHED if k not in e]),
            ('started_keys_ok', all(k in data['started_keys'] for k in ['request_id', 'thread_id', 'request_start', 'application_object', 'request_environ'])),
            ('status', e['status']),
            ('input_length', e['input_length']),
            ('input_reads_positive', e['input_reads'] > 0),
            ('output_length', e['output_length']),
            ('output_writes_positive', e['output_writes'] > 0),
            ('thread_id_positive', e['thread_id'] >= 1),
            ('times_ordered', 0 < e['request_start'] <= e['application_start'] <= e['application_finish']),
            ('application_time_ok', abs(e['application_time'] - (e['application_finish'] - e['application_start'])) < 1e-6),
            ('queue_start_positive', e['queue_start'] > 0),
            ('daemon_after_queue', e['daemon_start'] >= e['queue_start']),
            ('gil_wait_count_positive', e['gil_wait_count'] > 0),
            ('numbers', all(isinstance(e[k], (int, float)) for k in REQUIRED_FINISHED[1:] if k != 'request_id')),
            ('started_by', data.get('started_by')),
            ('app_wrote', data.get('app')),
            ('script_name', data.get('script_name')),
        ])
    if path == '/state':
        rid = environ['mod_wsgi.request_id']
        active = mod_wsgi.active_requests
        return lines(start_response, [
            ('import_request_data', IMPORT_REQUEST_DATA),
            ('first_events', ','.join(LOG[:3])),
            ('wrapped', environ.get('events.wrapped')),
            ('own_request_active', rid in active),
            ('active_is_request_data', active.get(rid) is mod_wsgi.request_data()),
            ('started_by_now', mod_wsgi.request_data().get('started_by')),
            ('exceptions', EXCEPTIONS),
            ('first_response', RESPONSES[0][0] if RESPONSES else None),
            ('scripts', sorted(set(e['request_data'].get('script_name') for e in FINISHED))),
            ('raise_status', [e['status'] for e in FINISHED if e['request_data'].get('path') == '/raise']),
        ])
    if path == '/metrics':
        pm = mod_wsgi.process_metrics()
        rm = mod_wsgi.request_metrics()
        return lines(start_response, [
            ('process_missing', [k for k in REQUIRED_PROCESS if k not in pm]),
            ('pid_ok', pm['pid'] == os.getpid()),
            ('process_request_count', pm['request_count']),
            ('threads_ok', bool(pm['threads']) and all(set(t) == {'thread_id', 'request_count'} for t in pm['threads'])),
            ('active_requests', pm['active_requests']),
            ('busy_positive', pm['request_busy_time'] > 0),
            ('rss_ok', pm['memory_rss'] > 0 and pm['memory_max_rss'] > 0),
            ('request_metrics_is_dict', isinstance(rm, dict)),
            ('request_missing', [k for k in REQUIRED_REQUEST if k not in rm]),
            ('request_count', rm['request_count']),
            ('buckets_ok', all(len(rm[k]) == 65 for k in rm if k.endswith('_buckets'))),
            ('application_buckets_sum', sum(rm['application_time_buckets'])),
            ('output_bytes', rm['output_bytes']),
            ('status_2xx', rm.get('status_2xx')),
            ('server_metrics', mod_wsgi.server_metrics()),
        ])
    start_response('404 Not Found', [('Content-Type', 'text/plain')])
    return [b'unknown path']
"#;

/// A subscriber that raises on every event, in an interpreter of its own.
const BAD_APP: &str = r#"
import mod_wsgi

def bad(name, **event):
    raise RuntimeError('callback-boom in ' + name)

mod_wsgi.subscribe_events(bad)

def application(environ, start_response):
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [b'still fine']
"#;

/// No subscriber: request_data() still works in a request, active_requests is made on demand.
/// Also answers what the `apache` module says.
const PLAIN_APP: &str = r#"
import mod_wsgi
import apache

def application(environ, start_response):
    d = mod_wsgi.request_data()
    d['x'] = 1
    same = mod_wsgi.request_data() is d
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [('same: %s\nactive: %s\napache: %s %s %s %s\n' % (
        same, type(mod_wsgi.active_requests).__name__,
        apache.version == environ['apache.version'], apache.mpm_name,
        apache.maximum_processes, apache.threads_per_process)).encode()]
"#;

/// MPM sizing with exactly one Apache child of 4 worker threads (prefork: one process).
fn one_child(mpm: Mpm) -> String {
    if mpm.is_threaded() {
        "StartServers 1\nServerLimit 1\nThreadLimit 4\nThreadsPerChild 4\nMinSpareThreads 1\n\
         MaxSpareThreads 5\nMaxRequestWorkers 4\nMaxConnectionsPerChild 0\n"
            .to_string()
    } else {
        "StartServers 1\nServerLimit 1\nMinSpareServers 1\nMaxSpareServers 1\nMaxRequestWorkers 1\n\
         MaxConnectionsPerChild 0\n"
            .to_string()
    }
}

const CONF: &str = "\
<Directory {dir}/scripts>
    Require all granted
</Directory>
WSGIScriptAlias /ev {dir}/scripts/events.wsgi
WSGIScriptAlias /bad {dir}/scripts/bad.wsgi
WSGIScriptAlias /plain {dir}/scripts/plain.wsgi
";

/// The value of line `name: value` of an application's answer.
fn field(r: &Response, name: &str) -> String {
    let text = r.text();
    let prefix = format!("{name}: ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no '{name}' in the answer (status {}):\n{text}", r.status))
        .to_string()
}

fn server(mode: Mode, mpm: Mpm) -> Apache {
    mode.builder(mpm)
        .mpm_config(&one_child(mpm))
        .script("events.wsgi", EVENTS_APP)
        .script("bad.wsgi", BAD_APP)
        .script("plain.wsgi", PLAIN_APP)
        .conf(CONF)
        .start()
}

/// Reports what `mod_wsgi.server_metrics()` gives, as `name: value` lines.
const SCOREBOARD_APP: &str = r#"
import mod_wsgi, os, time

def application(environ, start_response):
    m = mod_wsgi.server_metrics()
    out = []
    if m is None:
        out.append('metrics: None')
    else:
        me = [p for p in m['processes'] if p['pid'] == os.getpid()]
        out.append('metrics: dict')
        out.append('limits: %s' % (m['server_limit'] >= 1 and m['thread_limit'] >= 1))
        out.append('own_process: %d' % len(me))
        out.append('workers_per_process: %s' % all(len(p['workers']) == m['thread_limit'] for p in m['processes']))
        out.append('own_busy: %s' % (len(me) == 1 and any(w['status'] == 'W' for w in me[0]['workers'])))
        out.append('any_busy: %s' % any(w['status'] == 'W' for p in m['processes'] for w in p['workers']))
        out.append('statuses: %s' % all(len(w['status']) == 1 and w['status'] in '.S_RWKLDCGI' for p in m['processes'] for w in p['workers']))
        out.append('clock: %s' % (abs(m['current_time'] - time.time()) < 5 and m['running_time'] >= 0))
        out.append('generation: %s' % any(p['pid'] and p['generation'] == m['running_generation'] for p in m['processes']))
        out.append('worker_keys: %s' % ','.join(sorted(m['processes'][0]['workers'][0])))
        out.append('served: %s' % (sum(w['access_count'] for p in m['processes'] for w in p['workers']) >= 1))
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return ['\n'.join(out).encode()]
"#;

mode_suite! {

#[test]
fn server_metrics_reads_the_scoreboard_where_enabled() {
    // Embedded: WSGIServerMetrics On. Daemon: server-metrics=On on group g; group h, without
    // it, gets None.
    for mpm in MODE.mpms() {
        let a = ApacheBuilder::new()
            .mpm(mpm)
            .mpm_config(&one_child(mpm))
            .conf(&MODE.preamble_with("processes=1 threads=4 server-metrics=On"))
            .script("scoreboard.wsgi", SCOREBOARD_APP)
            .conf(
                // ExtendedStatus: Apache counts requests in the scoreboard (on by default only
                // with mod_status loaded).
                "WSGIServerMetrics On\nExtendedStatus On\nWSGIDaemonProcess h processes=1 threads=2\n\
                 <Directory {dir}/scripts>\n    Require all granted\n</Directory>\n\
                 WSGIScriptAlias /sb {dir}/scripts/scoreboard.wsgi\n\
                 WSGIScriptAlias /sb-h {dir}/scripts/scoreboard.wsgi process-group=h\n",
            )
            .start();
        let ctx = |r: &Response| format!("[{MODE} {mpm}] {r}\n--- error.log ---\n{}", a.error_log());
        // One request first: Apache counts a request in the scoreboard once it has ended.
        assert_eq!(a.get("/sb").status, 200);
        let r = a.get("/sb");
        assert_eq!(r.status, 200, "{}", ctx(&r));
        assert_eq!(field(&r, "metrics"), "dict", "{}", ctx(&r));
        // The Apache worker serving (or, in daemon mode, proxying) this request is writing its
        // response.
        for k in ["limits", "workers_per_process", "any_busy", "statuses", "clock", "generation", "served"] {
            assert_eq!(field(&r, k), "True", "{k}: {}", ctx(&r));
        }
        assert_eq!(
            field(&r, "worker_keys"),
            "access_count,bytes_served,client,generation,last_used,request,start_time,status,stop_time,thread_num,vhost",
            "{}",
            ctx(&r)
        );
        if MODE == Mode::Daemon {
            // A daemon process is not in the scoreboard; the Apache child proxying to it is.
            assert_eq!(field(&r, "own_process"), "0", "{}", ctx(&r));
            let r = a.get("/sb-h");
            assert_eq!((r.status, field(&r, "metrics").as_str()), (200, "None"), "{}", ctx(&r));
        } else {
            assert_eq!(field(&r, "own_process"), "1", "{}", ctx(&r));
            assert_eq!(field(&r, "own_busy"), "True", "{}", ctx(&r));
        }
        // After a graceful and a hard restart (new children, and new daemon processes started
        // from post_config) the scoreboard is still there.
        for (how, restart) in [("graceful", Apache::graceful as fn(&Apache)), ("hard", Apache::restart)] {
            restart(&a);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            let r = loop {
                let r = a.get("/sb");
                let good = r.status == 200 && r.text().contains("metrics: dict") && r.text().contains("generation: True");
                if good || std::time::Instant::now() > deadline {
                    break r;
                }
                std::thread::sleep(Duration::from_millis(100));
            };
            assert_eq!(field(&r, "metrics"), "dict", "after a {how} restart: {}", ctx(&r));
            assert_eq!(field(&r, "generation"), "True", "after a {how} restart: {}", ctx(&r));
        }
        MODE.stop(a);
    }
}

#[test]
fn events_request_data_and_metrics() {
    for mpm in MODE.mpms() {
        let a = server(MODE, mpm);
        let ctx = |what: &str, r: &Response| format!("[{MODE} {mpm}] {what}: {r}\n--- error.log ---\n{}", a.error_log());

        // A request with a body: its events, what the subscriber and the application wrote in
        // request_data, and what request_finished measured.
        let r = a.post("/ev/hello", "text/plain", b"abc");
        assert_eq!((r.status, r.text().as_str()), (200, "hello abc"), "{}", ctx("hello", &r));
        let id = r.header("X-Request-Id").unwrap_or_else(|| panic!("{}", ctx("hello id", &r))).to_string();

        let s = a.get("/ev/state");
        assert_eq!(s.status, 200, "{}", ctx("state", &s));
        assert_eq!(field(&s, "import_request_data"), "RuntimeError", "{}", ctx("request_data() outside a request", &s));
        assert_eq!(field(&s, "first_events"), "request_started,response_started,request_finished", "{}", ctx("events", &s));
        assert_eq!(field(&s, "wrapped"), "yes", "{}", ctx("application_object replaced", &s));
        assert_eq!(field(&s, "own_request_active"), "True", "{}", ctx("active_requests", &s));
        assert_eq!(field(&s, "active_is_request_data"), "True", "{}", ctx("active_requests value", &s));
        assert_eq!(field(&s, "started_by_now"), "handler", "{}", ctx("request_data of this request", &s));
        assert_eq!(field(&s, "first_response"), "200 OK", "{}", ctx("response_started", &s));

        let e = a.get_with("/ev/event", &[("X-Id", &id)]);
        let want = [
            ("found", "True"),
            ("missing", "[]"),
            ("started_keys_ok", "True"),
            ("status", "200"),
            ("input_length", "3"),
            ("input_reads_positive", "True"),
            ("output_length", "9"),
            ("output_writes_positive", "True"),
            ("thread_id_positive", "True"),
            ("times_ordered", "True"),
            ("application_time_ok", "True"),
            ("gil_wait_count_positive", "True"),
            ("numbers", "True"),
            ("started_by", "handler"),
            ("app_wrote", "yes"),
            ("script_name", "/ev"),
        ];
        for (k, v) in want {
            assert_eq!(field(&e, k), v, "{}", ctx(&format!("request_finished: {k}"), &e));
        }
        // queue_start and daemon_start: when the request went to, and reached, the daemon.
        let daemon = if MODE == Mode::Daemon { "True" } else { "False" };
        assert_eq!(field(&e, "queue_start_positive"), daemon, "{}", ctx("queue_start", &e));
        assert_eq!(field(&e, "daemon_after_queue"), "True", "{}", ctx("daemon_start", &e));

        // An application exception: request_exception, then request_finished with status 0.
        let r = a.get("/ev/raise");
        assert_eq!(r.status, 500, "{}", ctx("raise", &r));
        let s = a.get("/ev/state");
        assert!(field(&s, "exceptions").contains("boom-from-app"), "{}", ctx("request_exception", &s));
        assert_eq!(field(&s, "raise_status"), "[0]", "{}", ctx("status without start_response", &s));

        // A subscriber that raises: logged with its traceback, the request is unharmed; its
        // interpreter's subscribers are not the /ev interpreter's.
        let r = a.get("/bad/");
        assert_eq!((r.status, r.text().as_str()), (200, "still fine"), "{}", ctx("raising subscriber", &r));
        assert!(a.wait_log("callback-boom in request_finished", Duration::from_secs(5)), "{}", ctx("callback traceback", &r));
        let log = a.error_log();
        assert!(log.contains("WR0140") && log.contains("bad raised an exception for event 'request_started'"), "{}", ctx("WR0140", &r));
        let s = a.get("/ev/state");
        assert_eq!(field(&s, "scripts"), "['/ev']", "{}", ctx("events stay in their interpreter", &s));

        // No subscriber in this interpreter: request_data() works, active_requests is a dict.
        // The apache module describes Apache's MPM (in daemon processes too): one child of 4
        // threads here (prefork: 1).
        let r = a.get("/plain/");
        let threads = if mpm.is_threaded() { 4 } else { 1 };
        assert_eq!(r.text(), format!("same: True\nactive: dict\napache: True {mpm} 1 {threads}\n"), "{}", ctx("plain", &r));

        // Metrics: process_metrics() and two request_metrics() intervals (recording started at
        // import); the first /metrics request ends after its own call, so it counts in the next
        // interval, with the three /ev/hello requests between.
        let m = a.get("/ev/metrics");
        assert_eq!(m.status, 200, "{}", ctx("metrics", &m));
        for (k, v) in [("process_missing", "[]"), ("pid_ok", "True"), ("threads_ok", "True"), ("busy_positive", "True"), ("rss_ok", "True"), ("request_metrics_is_dict", "True"), ("request_missing", "[]"), ("buckets_ok", "True"), ("server_metrics", "None")] {
            assert_eq!(field(&m, k), v, "{}", ctx(&format!("metrics: {k}"), &m));
        }
        assert!(field(&m, "process_request_count").parse::<u64>().unwrap() >= 8, "{}", ctx("process request_count", &m));
        assert!(field(&m, "active_requests").parse::<u64>().unwrap() >= 1, "{}", ctx("active_requests count", &m));
        for _ in 0..3 {
            assert_eq!(a.post("/ev/hello", "text/plain", b"12345").status, 200);
        }
        let m = a.get("/ev/metrics");
        assert_eq!(field(&m, "request_count"), "4", "{}", ctx("request_metrics interval", &m));
        assert_eq!(field(&m, "application_buckets_sum"), "4", "{}", ctx("application_time_buckets", &m));
        assert_eq!(field(&m, "status_2xx"), "4", "{}", ctx("status classes", &m));
        let out: u64 = field(&m, "output_bytes").parse().unwrap();
        assert!(out >= 3 * 11, "{}", ctx("output_bytes", &m));

        // process_stopping (to the subscribe_shutdown callback, with the reason) and then
        // atexit, in the process that ran /ev, when the server stops.
        let st = MODE.stop(a);
        let reason = if MODE == Mode::Daemon { "shutdown_signal" } else { "" };
        let stop = st.error_log.find(&format!("EVENTS-STOP process_stopping {reason} "));
        let exit = st.error_log.find("EVENTS-ATEXIT");
        assert!(
            matches!((stop, exit), (Some(s), Some(e)) if s < e),
            "[{MODE} {mpm}] process_stopping then atexit:\n{}",
            st.error_log
        );
    }
}

}

#!/usr/bin/python3
"""Benchmark: this module vs Debian's mod_wsgi 4.9.4 vs Apache serving a static file.

Every server is a separate Apache (event MPM, same sizing, same WSGI configuration) pinned to CPU 0;
wrk runs pinned to CPU 1. Each case is measured `--rounds` times per server, the servers taking
turns, and the table shows the medians. Prints a table and writes bench/RESULTS.md.

Also measures start-up time: from running `mod_wsgi-express start-server` on a hello-world script
to its first 200 response, this project's program against PyPI's mod_wsgi-express (installed in
/tmp/venv-mod_wsgi-express, created if missing). `--only startup` runs just that and updates its
line in bench/RESULTS.md, leaving the tables as they are.

Usage: bench/run.py [--duration SECONDS] [--rounds N] [--module PATH] [--only CASE|interpreter|reload|startup]
"""
import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEBIAN_MOD_WSGI = '/usr/lib/apache2/modules/mod_wsgi.so'
MODS = '/usr/lib/apache2/modules'


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def make_traversable(path):
    while path != '/':
        os.chmod(path, os.stat(path).st_mode | 0o005)
        path = os.path.dirname(path)


CONF = """
ServerRoot "{dir}"
PidFile "{dir}/httpd.pid"
DefaultRuntimeDir "{dir}"
Listen 127.0.0.1:{port}
ServerName localhost
{user}
LoadModule mpm_event_module {mods}/mod_mpm_event.so
LoadModule authz_core_module {mods}/mod_authz_core.so
LoadModule alias_module {mods}/mod_alias.so
LoadModule mime_module {mods}/mod_mime.so
{loadwsgi}
ErrorLog "{dir}/error.log"
LogLevel warn
TypesConfig /etc/mime.types
EnableSendfile On
StartServers 1
ServerLimit 1
MinSpareThreads 25
MaxSpareThreads 75
ThreadsPerChild 25
MaxRequestWorkers 25
KeepAliveTimeout 30
MaxKeepAliveRequests 0
<Directory />
    Require all denied
</Directory>
DocumentRoot "{dir}/htdocs"
<Directory "{dir}/htdocs">
    Require all granted
</Directory>
{wsgi}
"""

WSGI = """
WSGISocketPrefix {dir}/wsgi
WSGIDaemonProcess bench processes=2 threads=15 display-name=%{{GROUP}}
WSGIScriptAlias /dhello {dir}/scripts/dhello.wsgi
<Location /dhello>
    WSGIProcessGroup bench
</Location>
WSGIScriptAlias /hello {dir}/scripts/hello.wsgi
WSGIScriptAlias /ghello {dir}/scripts/hello.wsgi application-group=%{{GLOBAL}}
WSGIScriptAliasMatch ^/m([0-9]+)$ {dir}/scripts/hello.wsgi
WSGIScriptAlias /app {dir}/scripts/app.wsgi
<Directory {dir}/scripts>
    Require all granted
</Directory>
"""


class Server:
    def __init__(self, name, module, wsgi=True):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix='bench-%s-' % name, dir=os.path.join(ROOT, 'target'))
        os.chmod(self.dir, 0o755)
        os.makedirs(self.dir + '/htdocs')
        os.makedirs(self.dir + '/scripts')
        shutil.copy(os.path.join(ROOT, 'examples/hello.wsgi'), self.dir + '/scripts/hello.wsgi')
        shutil.copy(os.path.join(ROOT, 'examples/hello.wsgi'), self.dir + '/scripts/dhello.wsgi')
        shutil.copy(os.path.join(HERE, 'app.wsgi'), self.dir + '/scripts/app.wsgi')
        with open(self.dir + '/htdocs/hello.txt', 'wb') as f:
            f.write(b'Hello World!')
        with open(self.dir + '/htdocs/1m.bin', 'wb') as f:
            f.write(b'x' * (1 << 20))
        big = self.dir + '/scripts/big.bin'
        with open(big, 'wb') as f:
            f.write(os.urandom(1 << 20) * 32)
        os.link(big, self.dir + '/htdocs/big.bin')
        subprocess.run(['chmod', '-R', 'o+rX', self.dir], check=True)
        make_traversable(self.dir)
        self.port = free_port()
        user = 'User www-data\nGroup www-data' if os.geteuid() == 0 else ''
        loadwsgi = 'LoadModule wsgi_module %s' % module if module else ''
        wsgi_conf = WSGI.format(dir=self.dir) if (wsgi and module) else ''
        with open(self.dir + '/httpd.conf', 'w') as f:
            f.write(CONF.format(dir=self.dir, port=self.port, user=user, mods=MODS,
                                loadwsgi=loadwsgi, wsgi=wsgi_conf))
        self.proc = subprocess.Popen(
            ['taskset', '-c', '0', '/usr/sbin/apache2', '-f', self.dir + '/httpd.conf', '-DFOREGROUND'],
            start_new_session=True, env={'PATH': '/usr/sbin:/usr/bin:/bin', 'LANG': 'C'})
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit('%s did not start:\n%s' % (name, open(self.dir + '/error.log').read()))

    def url(self, path):
        return 'http://127.0.0.1:%d%s' % (self.port, path)

    def children(self):
        return [pid for pid, fields in proc_stats() if int(fields[1]) == self.proc.pid]

    def rss_kib(self):
        """The largest RSS among the Apache parent's children (KiB)."""
        total = 0
        for pid in self.children():
            try:
                total = max(total, rss_of(pid))
            except OSError:
                pass
        return total

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        except Exception:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


def parse_latency(s):
    m = re.match(r'([\d.]+)(us|ms|s|m)$', s)
    if not m:
        return float('nan')
    v, unit = float(m.group(1)), m.group(2)
    return {'us': v / 1000, 'ms': v, 's': v * 1000, 'm': v * 60000}[unit]


def wrk(url, duration, connections, script=None):
    cmd = ['taskset', '-c', '1', 'wrk', '-t1', '-c%d' % connections, '-d%ds' % duration, '--latency', url]
    if script:
        cmd[4:4] = ['-s', script]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60).stdout
    m = re.search(r'Requests/sec:\s+([\d.]+)', out)
    if not m:
        raise SystemExit('wrk failed on %s:\n%s' % (url, out))
    rps = float(m.group(1))
    m = re.search(r'99%\s+(\S+)', out)
    p99 = parse_latency(m.group(1)) if m else float('nan')
    errors = sum(int(x) for x in re.findall(r'(?:connect|read|write|timeout) (\d+)', out))
    non2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    return {'rps': rps, 'p99': p99, 'errors': errors + (int(non2xx.group(1)) if non2xx else 0)}


def proc_stats():
    """(pid, fields of /proc/PID/stat after the command name) for every process."""
    for pid in os.listdir('/proc'):
        if not pid.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % pid) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 3:
            yield int(pid), fields


def rss_of(pid):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    return 0


def interpreter_cost_mib(srv, k=10):
    """RSS added to the Apache child by each further sub-interpreter (one per /mN mount)."""
    from urllib.request import urlopen
    pid = int(urlopen(srv.url('/app/pid')).read())
    for i in range(3):
        urlopen(srv.url('/m%d' % i)).read()
    before = rss_of(pid)
    for i in range(3, 3 + k):
        urlopen(srv.url('/m%d' % i)).read()
    return (rss_of(pid) - before) / 1024 / k


UPSTREAM_VENV = '/tmp/venv-mod_wsgi-express'
STARTUP_RUNS = 5
STARTUP_PREFIX = 'Start-up time, from `mod_wsgi-express start-server`'


def upstream_express():
    """PyPI's mod_wsgi-express and its version, installing it into UPSTREAM_VENV if missing."""
    exe = os.path.join(UPSTREAM_VENV, 'bin', 'mod_wsgi-express')
    if not os.path.exists(exe):
        print('installing PyPI mod_wsgi into %s' % UPSTREAM_VENV, file=sys.stderr)
        subprocess.run(['/usr/bin/python3', '-m', 'venv', UPSTREAM_VENV], check=True)
        subprocess.run([os.path.join(UPSTREAM_VENV, 'bin', 'pip'), 'install', '--disable-pip-version-check',
                        '--no-input', 'mod_wsgi'], check=True)
    version = subprocess.run(
        [os.path.join(UPSTREAM_VENV, 'bin', 'python'), '-c',
         'import importlib.metadata as m; print(m.version("mod_wsgi"))'],
        capture_output=True, text=True, check=True).stdout.strip()
    return exe, version


def first_200(port, deadline):
    """Polls http://127.0.0.1:PORT/ every 5 ms until it answers 200; the time it did, or None."""
    import http.client
    while time.monotonic() < deadline:
        try:
            c = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
            c.request('GET', '/')
            status = c.getresponse().status
            c.close()
            if status == 200:
                return time.monotonic()
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.005)
    return None


def session_pids(sid):
    return [pid for pid, fields in proc_stats() if int(fields[3]) == sid and fields[0] not in 'ZX']


def port_answers(port):
    try:
        socket.create_connection(('127.0.0.1', port), timeout=0.5).close()
        return True
    except OSError:
        return False


def startup_once(argv, port, workdir):
    """Seconds from starting `argv` (a start-server command for PORT) to the first 200; then stops
    it (SIGTERM to its process group) and waits until nothing of it is left."""
    log = open(os.path.join(workdir, 'startup-%d.log' % port), 'wb')
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        t1 = first_200(port, t0 + 60)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 20
        while (session_pids(proc.pid) or port_answers(port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for pid in session_pids(proc.pid):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    if t1 is None:
        with open(log.name, errors='replace') as f:
            raise SystemExit('%s gave no 200 within 60 s:\n%s' % (' '.join(argv), f.read()[-3000:]))
    return t1 - t0


def measure_startup(runs=STARTUP_RUNS):
    """Median start-up time of this project's mod_wsgi-express and of PyPI's, alternating runs,
    each on a free port with its own server root; returns (ours, theirs, their version)."""
    ours_exe = os.path.join(ROOT, 'target/release/mod_wsgi-express')
    if not os.path.exists(ours_exe):
        raise SystemExit('build first: %s is missing (cargo build --release)' % ours_exe)
    theirs_exe, version = upstream_express()
    workdir = tempfile.mkdtemp(prefix='bench-startup-', dir=os.path.join(ROOT, 'target'))
    try:
        os.chmod(workdir, 0o755)
        make_traversable(workdir)
        shutil.copy(os.path.join(ROOT, 'examples/hello.wsgi'), workdir + '/hello.wsgi')
        os.chmod(workdir + '/hello.wsgi', 0o644)
        user = ['--user', 'www-data', '--group', 'www-data'] if os.geteuid() == 0 else []
        times = {'ours': [], 'theirs': []}
        for i in range(runs):
            for who, exe in (('ours', ours_exe), ('theirs', theirs_exe)):
                port = free_port()
                root = os.path.join(workdir, 'root-%s-%d' % (who, i))
                argv = [exe, 'start-server', workdir + '/hello.wsgi', '--host', '127.0.0.1', '--port', str(port),
                        '--server-root', root] + user
                t = startup_once(argv, port, workdir)
                times[who].append(t)
                print('%-45s %-9s %8.3f s' % ('start-up to first 200 (run %d)' % (i + 1), who, t), file=sys.stderr)
        return statistics.median(times['ours']), statistics.median(times['theirs']), version
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def startup_line(ours, theirs, version):
    return ('%s on examples/hello.wsgi (default daemon mode, free port) to its first 200, median of %d runs '
            '(`bench/run.py --only startup`, %s): this project %.3f s, PyPI mod_wsgi-express %s %.3f s (%.1fx as long)'
            % (STARTUP_PREFIX, STARTUP_RUNS, time.strftime('%Y-%m-%d'), ours, version, theirs, theirs / ours))


def update_results_line(line):
    """Replaces the start-up line of RESULTS.md (or adds it after the tables), touching nothing else."""
    path = os.path.join(HERE, 'RESULTS.md')
    with open(path) as f:
        text = f.read().rstrip('\n').split('\n')
    kept = [l for l in text if not l.startswith(STARTUP_PREFIX)]
    while kept and kept[-1] == '':
        kept.pop()
    kept += ['', line]
    with open(path, 'w') as f:
        f.write('\n'.join(kept) + '\n')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--duration', type=int, default=8)
    ap.add_argument('--rounds', type=int, default=3, help='measurements per server and case (interleaved); the table shows medians')
    ap.add_argument('--only', default='', help='run only the cases whose name contains this (or: interpreter, reload, startup)')
    ap.add_argument('--module', default=os.path.join(ROOT, 'target/release/mod_wsgi.so'))
    args = ap.parse_args()
    if not os.path.exists(args.module):
        raise SystemExit('build the module first: %s is missing' % args.module)
    upload_lua = os.path.join(ROOT, 'target', 'bench-upload.lua')
    with open(upload_lua, 'w') as f:
        f.write('wrk.method = "POST"\nwrk.body = string.rep("u", 64 * 1024 * 1024)\n'
                'wrk.headers["Content-Type"] = "application/octet-stream"\n')

    d = args.duration
    cases = [
        ('hello world', {'this': '/hello', 'mod_wsgi': '/hello', 'static': '/hello.txt'}, 16, None),
        ('hello world, %{GLOBAL}', {'this': '/ghello', 'mod_wsgi': '/ghello', 'static': '/hello.txt'}, 16, None),
        ('daemon hello world (processes=2 threads=15)', {'this': '/dhello', 'mod_wsgi': '/dhello', 'static': '/hello.txt'}, 16, None),
        ('daemon hello world, 64 connections', {'this': '/dhello', 'mod_wsgi': '/dhello', 'static': '/hello.txt'}, 64, None),
        ('1 MiB response', {'this': '/app/1m', 'mod_wsgi': '/app/1m', 'static': '/1m.bin'}, 4, None),
        ('32 MiB file_wrapper', {'this': '/app/file', 'mod_wsgi': '/app/file', 'static': '/big.bin'}, 2, None),
        ('64 MiB upload', {'this': '/app/upload', 'mod_wsgi': '/app/upload'}, 2, upload_lua),
    ]
    cases = [c for c in cases if args.only in c[0]]
    want_interp = 'interpreter' in args.only or not args.only
    want_reload = 'reload' in args.only or not args.only
    want_startup = 'startup' in args.only or not args.only
    servers = {}
    if cases or want_interp or want_reload:
        if not os.path.exists(DEBIAN_MOD_WSGI):
            raise SystemExit('apt-get install libapache2-mod-wsgi-py3 (the reference to compare with)')
        servers = {
            'this': Server('this', args.module),
            'mod_wsgi': Server('modwsgi', DEBIAN_MOD_WSGI),
            'static': Server('static', None, wsgi=False),
        }
    results = []
    try:
        for name, paths, conns, script in cases:
            row = {'case': name}
            runs = {who: [] for who in paths}
            for who, path in paths.items():
                wrk(servers[who].url(path), 1, conns, script)  # warm-up: load scripts, start threads
            # Rounds interleave the servers (this, mod_wsgi, static, this, ...), so a slow spell
            # of the machine hits each of them rather than one; each figure is the median.
            for _ in range(args.rounds):
                for who, path in paths.items():
                    srv = servers[who]
                    rss_before = srv.rss_kib()
                    peak = [rss_before]
                    done = threading.Event()

                    def sample():
                        while not done.is_set():
                            peak[0] = max(peak[0], srv.rss_kib())
                            time.sleep(0.2)
                    t = threading.Thread(target=sample)
                    t.start()
                    r = wrk(srv.url(path), d, conns, script)
                    print('%-45s %-9s %8.0f req/s  p99 %.2f ms' % (name, who, r['rps'], r['p99']), file=sys.stderr)
                    done.set()
                    t.join()
                    r['rss_growth_mib'] = (peak[0] - rss_before) / 1024
                    runs[who].append(r)
            for who, rs in runs.items():
                row[who] = {
                    'rps': statistics.median(r['rps'] for r in rs),
                    'p99': statistics.median([r['p99'] for r in rs if r['p99'] == r['p99']] or [float('nan')]),
                    'errors': sum(r['errors'] for r in rs),
                    'rss_growth_mib': max(r['rss_growth_mib'] for r in rs),
                }
            results.append(row)
    except BaseException:
        for s in servers.values():
            s.stop()
        raise

    interp_cost = {}
    if want_interp:
        for who in ('this', 'mod_wsgi'):
            interp_cost[who] = interpreter_cost_mib(servers[who])
            print('%-45s %-9s %8.2f MiB' % ('RSS per extra sub-interpreter', who, interp_cost[who]), file=sys.stderr)

    # Reload under load: the daemon script is touched every 2 s during a longer run.
    reload_rows = []
    if want_reload:
        steady = {r: row[r]['rps'] for row in results if row['case'].startswith('daemon') for r in ('this', 'mod_wsgi')}
        for who in ('this', 'mod_wsgi'):
            srv = servers[who] if who in servers and servers[who].proc.poll() is None else None
            if srv is None:
                srv = Server(who + '-reload', args.module if who == 'this' else DEBIAN_MOD_WSGI)
                servers[who + '-reload'] = srv
            wrk(srv.url('/dhello'), 1, 16)
            stop = threading.Event()
            touches = [0]

            def toucher():
                while not stop.wait(2.0):
                    os.utime(srv.dir + '/scripts/dhello.wsgi')
                    touches[0] += 1
            t = threading.Thread(target=toucher)
            t.start()
            r = wrk(srv.url('/dhello'), max(d, 10) + 2, 16)
            stop.set()
            t.join()
            out = subprocess.run(['grep', '-c', 'restart', srv.dir + '/error.log'], capture_output=True, text=True).stdout.strip()
            reload_rows.append((who, r, touches[0], steady.get(who)))
    for s in list(servers.values()):
        s.stop()

    # Start-up time, measured with no benchmark server running.
    startup = None
    if want_startup:
        ours, theirs, version = measure_startup()
        startup = startup_line(ours, theirs, version)
    if startup and not (results or reload_rows or interp_cost):
        # Only the start-up time was measured: update its line, keep the tables.
        update_results_line(startup)
        print(startup)
        return

    lines = ['| case | this module req/s | p99 ms | mod_wsgi 4.9.4 req/s | p99 ms | static req/s | '
             'vs mod_wsgi | vs static | errors (this/mod_wsgi) | RSS growth MiB (this/mod_wsgi) |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for row in results:
        t, m, s = row['this'], row['mod_wsgi'], row.get('static')
        lines.append('| %s | %.0f | %.2f | %.0f | %.2f | %s | %.2fx | %s | %d/%d | %.1f/%.1f |' % (
            row['case'], t['rps'], t['p99'], m['rps'], m['p99'],
            '%.0f' % s['rps'] if s else '-', t['rps'] / m['rps'],
            '%.2fx' % (t['rps'] / s['rps']) if s else '-',
            t['errors'], m['errors'], t['rss_growth_mib'], m['rss_growth_mib']))
    if reload_rows:
        lines += ['', '| reload under load (touch every 2 s) | requests/s | errors (non-2xx + socket) | touches | throughput vs steady daemon run |',
                  '|---|---|---|---|---|']
        for who, r, touches, steady in reload_rows:
            lines.append('| %s | %.0f | %d | %d | %s |' % (
                'this module' if who == 'this' else 'mod_wsgi 4.9.4', r['rps'], r['errors'], touches,
                '%.0f%%' % (100 * r['rps'] / steady) if steady else '-'))
    sub = {row['case']: row['this']['rps'] for row in results}
    if 'hello world' in sub and 'hello world, %{GLOBAL}' in sub:
        lines += ['', 'Hello world in a sub-interpreter (default mount) vs the same under %%{GLOBAL}: %.2fx'
                  % (sub['hello world'] / sub['hello world, %{GLOBAL}'])]
    if interp_cost:
        lines += ['', 'RSS added to an Apache child by each further sub-interpreter (hello world loaded): '
                  'this module %.2f MiB, mod_wsgi 4.9.4 %.2f MiB' % (interp_cost['this'], interp_cost['mod_wsgi'])]
    if startup:
        lines += ['', startup]
    report = '\n'.join(lines)
    print(report)
    with open(os.path.join(HERE, 'RESULTS.md'), 'w') as f:
        f.write('Measured by `bench/run.py --duration %d --rounds %d` on %s (Apache pinned to CPU 0, wrk to CPU 1, '
                'event MPM; each figure the median of %d interleaved runs of %d s).\n\n'
                % (d, args.rounds, time.strftime('%Y-%m-%d'), args.rounds, d))
        f.write(report + '\n')


if __name__ == '__main__':
    main()

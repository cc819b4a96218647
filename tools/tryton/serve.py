#!/usr/bin/env python3
"""Run a throw-away Tryton 8.0 server on a copy of the seeded snapshot.

Run with the venv's python (the `serve` wrapper does this after `prepare`):

    serve.py --dir /tmp/tryton-run1 --port 0 [--snapshot DIR]

1. restores the snapshot into DIR/db with the sqlite3 backup API,
2. writes DIR/trytond.conf and starts `trytond -c conf -d backhaul`
   (log in DIR/trytond.log),
3. waits until JSON-RPC answers, then prints ONE line on stdout:
   READY {"url": ..., "database": ..., "user": ..., "password": ...,
          "warehouse": ..., "scrap_location": ...}
4. runs until stdin reaches EOF (the lifeline: the Rust test holds the write
   end of a pipe, so when the test process dies, the server goes too) or
   SIGTERM/SIGINT, then stops trytond (SIGTERM, SIGKILL after 10 s).

Only the standard library is used here (plus the venv's trytond binary).
"""

import argparse
import base64
import ctypes
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DB_NAME = 'backhaul'
START_TIMEOUT = 120  # seconds, for trytond to answer JSON-RPC
STOP_GRACE = 10      # seconds between SIGTERM and SIGKILL


def log(msg):
    print(f"serve: {msg}", file=sys.stderr, flush=True)


def find_snapshot(arg):
    if arg:
        return os.path.abspath(arg)
    if os.environ.get('BACKHAUL_TRYTON_SNAPSHOT'):
        return os.path.abspath(os.environ['BACKHAUL_TRYTON_SNAPSHOT'])
    # Fall back to prepare (a no-op when the snapshot is cached).
    out = subprocess.run([os.path.join(HERE, 'prepare')], check=True,
        stdout=subprocess.PIPE, text=True).stdout
    return out.strip().splitlines()[-1]


def restore(snapshot_db, db_dir):
    """Copy the snapshot with the backup API into a clean db dir.

    Stale -wal/-shm files next to the target would be replayed onto the fresh
    copy by SQLite and corrupt it, so they are removed first."""
    os.makedirs(db_dir, exist_ok=True)
    target = os.path.join(db_dir, DB_NAME + '.sqlite')
    for suffix in ('', '-wal', '-shm', '-journal'):
        try:
            os.unlink(target + suffix)
        except FileNotFoundError:
            pass
    # Read-only URI: never write (or leave -wal/-shm files) in the cache.
    src = sqlite3.connect(f'file:{snapshot_db}?mode=ro', uri=True)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    dst.close()
    return target


def free_port():
    # Small race (the port could be taken before trytond binds it) accepted:
    # only loopback, and a failure shows up as a timeout with the log tail.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def write_conf(path, port, db_dir):
    with open(path, 'w') as f:
        f.write(f"""[web]
listen = 127.0.0.1:{port}

[database]
uri = sqlite://
path = {db_dir}

[cache]
# The default 300 s makes Cache.sync flip the SQLite connection of a request
# to autocommit, which breaks trytond's lock-retry (spurious "You can not
# call post" errors). One process needs no cross-process cache sync.
clean_timeout = 1000000000

[session]
# account.invoice.post needs a fresh session; tests may idle longer than the
# default 300 s between login and post.
timeout = 86400
max_age = 86400

[password]
length = 0

# No [queue] worker: queued tasks (sale.process after confirm, ...) then run
# inline at the end of the request, so shipments and invoices exist when
# `confirm` returns.
""")


def rpc(url, method, params, auth=None, timeout=5):
    body = json.dumps({'id': 1, 'method': method, 'params': params}).encode()
    req = urllib.request.Request(url, data=body,
        headers={'Content-Type': 'application/json'})
    if auth:
        req.add_header('Authorization', auth)
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data = json.loads(resp.read())
    if 'error' in data:
        raise RuntimeError(f"{method}: {data['error']}")
    return data['result']


def tail(path, lines=60):
    try:
        with open(path, 'rb') as f:
            data = f.read().decode('utf-8', 'replace').splitlines()
        return '\n'.join(data[-lines:])
    except OSError as e:
        return f"<no log: {e}>"


def die_with_parent():
    """preexec_fn: have the kernel SIGTERM trytond if serve.py itself is
    SIGKILLed (the stdin lifeline cannot run then)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except Exception:
        pass


def stop(proc):
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(STOP_GRACE)
    except subprocess.TimeoutExpired:
        log("trytond ignored SIGTERM, sending SIGKILL")
        proc.kill()
        proc.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dir', required=True,
        help="fresh working dir for this run (db, conf, log)")
    parser.add_argument('--port', type=int, default=0,
        help="loopback port; 0 picks a free one")
    parser.add_argument('--snapshot',
        help="snapshot dir printed by prepare (default: "
        "$BACKHAUL_TRYTON_SNAPSHOT, else run prepare)")
    parser.add_argument('--ignore-stdin', action='store_true',
        help="do not stop on stdin EOF (manual runs with </dev/null)")
    args = parser.parse_args()

    started = time.monotonic()
    snapshot = find_snapshot(args.snapshot)
    with open(os.path.join(snapshot, 'facts.json')) as f:
        facts = json.load(f)
    workdir = os.path.abspath(args.dir)
    os.makedirs(workdir, exist_ok=True)
    db_dir = os.path.join(workdir, 'db')
    restore(os.path.join(snapshot, DB_NAME + '.sqlite'), db_dir)

    port = args.port or free_port()
    conf = os.path.join(workdir, 'trytond.conf')
    write_conf(conf, port, db_dir)
    log_path = os.path.join(workdir, 'trytond.log')
    trytond = os.path.join(os.path.dirname(sys.executable), 'trytond')

    stopping = threading.Event()

    def on_signal(signum, frame):
        stopping.set()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    with open(log_path, 'ab') as log_file:
        # -d preloads the pool: without it the first common.db.login fails
        # in 8.0.12 with {"error": ["'res.user'", ""]}.
        proc = subprocess.Popen(
            [trytond, '-c', conf, '-d', DB_NAME, '-v'],
            stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            preexec_fn=die_with_parent)
    try:
        url = f'http://127.0.0.1:{port}'
        deadline = time.monotonic() + START_TIMEOUT
        delay = 0.05
        while True:
            if stopping.is_set():
                return 0
            if proc.poll() is not None:
                log(f"trytond exited with {proc.returncode} during start; "
                    f"log tail:\n{tail(log_path)}")
                return 1
            try:
                rpc(url + '/rpc/', 'common.server.version', [])
                # Also prove the database answers (and warm up the pool):
                # login as the hub will.
                uid, key, _ = rpc(f'{url}/{DB_NAME}/rpc/', 'common.db.login',
                    ['admin', {'password': 'admin'}, 'en'], timeout=30)
                break
            except (urllib.error.URLError, ConnectionError, OSError,
                    RuntimeError) as e:
                if time.monotonic() > deadline:
                    log(f"trytond did not answer within {START_TIMEOUT} s "
                        f"({e}); log tail:\n{tail(log_path)}")
                    return 1
                time.sleep(delay)
                delay = min(delay * 1.5, 1.0)

        ready = {
            'url': url,
            'database': DB_NAME,
            'user': 'admin',
            'password': 'admin',
            'warehouse': facts['locations']['warehouse']['code'],
            'scrap_location': facts['locations']['scrap']['code'],
            }
        sys.stdout.write('READY ' + json.dumps(ready) + '\n')
        sys.stdout.flush()
        log(f"ready in {time.monotonic() - started:.1f} s at {url} "
            f"(dir {workdir}, pid {proc.pid})")

        if not args.ignore_stdin:
            def lifeline():
                # Blocks until the parent closes its end of the pipe (or dies).
                # Raw os.read, not sys.stdin: a daemon thread blocked inside
                # the buffered reader aborts the interpreter at shutdown
                # ("could not acquire lock for <stdin>") on SIGTERM.
                try:
                    while os.read(0, 65536):
                        pass
                except OSError:
                    pass
                stopping.set()
            threading.Thread(target=lifeline, daemon=True).start()

        while not stopping.wait(1.0):
            if proc.poll() is not None:
                log(f"trytond exited unexpectedly with {proc.returncode}; "
                    f"log tail:\n{tail(log_path)}")
                return 1
        log("stopping trytond")
        return 0
    finally:
        stop(proc)


if __name__ == '__main__':
    sys.exit(main())

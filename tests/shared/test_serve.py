"""``python -m shared.serve``: uvicorn's command line, each worker on its own SO_REUSEPORT
listener. Real processes and real sockets: the spread of connections over workers, a killed
worker's replacement taking its share, and a clean stop."""

from __future__ import annotations

import collections
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared.serve import CAN_SPREAD
from tests.browser import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not CAN_SPREAD, reason="SO_REUSEPORT spreads connections only on Linux")

WORKERS = 2
CONNECTIONS = 64


def serve(port: int, *options: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "shared.serve", "tests.shared.pid_app:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--no-access-log", "--log-level", "warning", *options]
    return subprocess.Popen(argv, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), start_new_session=True)


def pids_serving(port: int, connections: int = CONNECTIONS) -> collections.Counter[int]:
    """Open ``connections`` connections at once (as a client pool does), one request on each:
    how many each worker pid answered."""
    opened = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(connections)]
    for conn in opened:
        conn.connect()
    served: collections.Counter[int] = collections.Counter()
    for conn in opened:
        conn.request("GET", "/")
        served[int(conn.getresponse().read())] += 1
        conn.close()
    return served


def wait_serving(port: int, workers: int, process: subprocess.Popen, within: float = 30.0) -> collections.Counter:
    deadline = time.monotonic() + within
    while True:
        assert process.poll() is None, "the server exited"
        try:
            served = pids_serving(port)
            if len(served) == workers:
                return served
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{workers} workers were not all serving within {within:g} s")
        time.sleep(0.2)


def listeners(port: int) -> set[int]:
    """Inodes of the sockets listening on ``port``."""
    listening = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, state, inode = fields[1], fields[3], int(fields[9])
        if state == "0A" and int(local.split(":")[1], 16) == port:
            listening.add(inode)
    return listening


def listening_inodes(pid: int, port: int) -> set[int]:
    """Inodes of the sockets listening on 127.0.0.1:``port`` that process ``pid`` holds."""
    listening = listeners(port)
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.exists() else ""
        if target.startswith("socket:["):
            held.add(int(target[8:-1]))
    return listening & held


@pytest.fixture
def server():
    port = free_port()
    process = serve(port, "--workers", str(WORKERS))
    yield port, process
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_each_worker_listens_on_its_own_socket_and_takes_a_share(server):
    port, process = server
    served = wait_serving(port, WORKERS, process)
    # uvicorn's shared socket split such bursts 32/0 or 31/1; hashing over two listeners gives
    # fewer than 16 of 64 to one worker with probability 3e-5.
    assert all(count >= CONNECTIONS // 4 for count in served.values()), served
    worker_sockets = [listening_inodes(pid, port) for pid in served]
    assert all(len(inodes) == 1 for inodes in worker_sockets), worker_sockets
    assert worker_sockets[0] != worker_sockets[1]
    # The supervisor holds no listener: a dead worker's socket leaves the group with it.
    assert listening_inodes(process.pid, port) == set()


def test_a_killed_worker_is_replaced_and_no_connection_is_left_waiting(server):
    port, process = server
    before = wait_serving(port, WORKERS, process)
    victim = next(iter(before))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    # Connections hashed to its socket while it dies are reset (as with any listener that
    # closes); count from when its socket has gone.
    while len(listeners(port)) == WORKERS:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    while True:
        served = pids_serving(port)  # every connection answered, none hashed to a dead socket
        if victim not in served and len(served) == WORKERS:
            break
        assert time.monotonic() < deadline, f"the killed worker was not replaced: {served}"
        time.sleep(0.2)
    assert sum(served.values()) == CONNECTIONS


def test_sigterm_stops_supervisor_and_workers_and_frees_the_port(server):
    port, process = server
    workers = set(wait_serving(port, WORKERS, process))
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=15) == 0
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
    rebind = serve(port)  # one worker, uvicorn's own path: the port is free again
    try:
        assert len(wait_serving(port, 1, rebind)) == 1
    finally:
        rebind.terminate()
        rebind.wait(timeout=15)


def test_a_port_taken_by_another_program_stops_the_supervisor():
    port = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        process = serve(port, "--workers", str(WORKERS))
        try:
            assert process.wait(timeout=30) != 0
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)

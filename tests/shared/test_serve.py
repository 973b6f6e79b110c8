"""``python -m shared.serve``: uvicorn's command line, its supervisor dealing connections to
the workers in turn. Real processes and real sockets: an even split, a killed worker's share
taken by the others with every connection answered, a restart, and clean stops."""

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

from shared.serve import CAN_DEAL
from tests.browser import free_port
from tests.conftest import ROOT

pytestmark = pytest.mark.skipif(not CAN_DEAL, reason="connections are dealt over SCM_RIGHTS on Linux only")

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


def gone(pid: int) -> bool:
    """Exited with every thread, so its descriptors are closed; or reaped. Not merely a zombie:
    a killed process's main thread is one while its other threads still hold its descriptors
    (its channel, which then still takes a connection that dies with it)."""
    try:
        return not any(os.listdir(f"/proc/{pid}/task/{tid}/fd") for tid in os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, PermissionError):
        return True


def wait_until(condition, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_connections_are_dealt_to_the_workers_in_turn(server):
    port, process = server
    served = wait_serving(port, WORKERS, process)
    # uvicorn's shared socket split such bursts 32/0 or 31/1, a SO_REUSEPORT hash 40/24 at times.
    assert sorted(served.values()) == [CONNECTIONS // WORKERS] * WORKERS, served
    # Only the supervisor listens; a worker holds no listener a connection could wait on.
    assert len(listening_inodes(process.pid, port)) == 1
    assert all(listening_inodes(pid, port) == set() for pid in served)


def test_a_killed_worker_is_passed_over_and_replaced_and_every_connection_answered(server):
    port, process = server
    before = wait_serving(port, WORKERS, process)
    victim, survivor = before
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: gone(victim), 10, "the killed worker did not exit")
    # From its death on, nothing is dealt to it: every connection is answered by the others.
    served = pids_serving(port)
    assert sum(served.values()) == CONNECTIONS and victim not in served, served
    deadline = time.monotonic() + 30
    while len(served) < WORKERS:
        assert survivor in served and time.monotonic() < deadline, f"the killed worker was not replaced: {served}"
        time.sleep(0.1)
        served = pids_serving(port)
    # Its replacement takes its turn once it has said it is ready.
    assert sorted(served.values()) == [CONNECTIONS // WORKERS] * WORKERS, served
    assert victim not in served


def test_sighup_replaces_every_worker_and_the_new_ones_are_dealt_to(server):
    port, process = server
    before = set(wait_serving(port, WORKERS, process))
    os.kill(process.pid, signal.SIGHUP)
    deadline = time.monotonic() + 60
    while True:
        try:
            served = pids_serving(port)
        except (http.client.RemoteDisconnected, ConnectionError):
            # An old worker closes the idle connections it holds when it stops, as uvicorn does.
            continue
        if not before & set(served):
            break
        assert time.monotonic() < deadline, f"the workers were not all replaced: {served}"
        time.sleep(0.1)
    assert sorted(served.values()) == [CONNECTIONS // WORKERS] * WORKERS, served
    wait_until(lambda: all(gone(pid) for pid in before), 15, "an old worker outlived the restart")


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


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(server):
    port, process = server
    workers = set(wait_serving(port, WORKERS, process))
    os.kill(process.pid, signal.SIGKILL)  # the supervisor alone: no signal reaches the workers
    process.wait()
    # Their channels close with the supervisor: each finishes its requests and exits.
    wait_until(lambda: all(gone(pid) for pid in workers), 15, "orphaned workers kept running")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


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

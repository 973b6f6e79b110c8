"""``scripts/run_all.py`` as the scale tests run it: every API and worker as real processes, N
replicas each, against the test PostgreSQL/RabbitMQ (``SALESLINE_EXTERNAL_INFRA=1`` and
``--keep-infra``: the supervisor never starts or stops the shared servers), on free ports,
with this test's database, exchange and queue prefix (inherited from the environment).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from shared.migrate import SERVICES

ROOT = Path(__file__).resolve().parents[2]


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port_base(services: int) -> int:
    """A base port whose API (port + 100*i) and worker metrics (+1000) ports are all free, for 2 replicas."""
    for _ in range(200):
        base = random.randrange(20000, 28000, 10)
        ports = [base + s + off for s in range(services) for off in (0, 100, 1000, 1100)]
        if all(_free(p) for p in ports):
            return base
    raise RuntimeError("no free port range found")


@dataclass
class Cluster:
    proc: subprocess.Popen
    ports: dict[str, int]
    replicas: int
    log_dir: Path

    def api(self, service: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[service] + 100 * replica}"

    def worker_metrics(self, service: str, replica: int = 0) -> str:
        return f"http://127.0.0.1:{self.ports[service] + 1000 + 100 * replica}/metrics"

    def worker_pids(self, service: str) -> list[int]:
        """The live worker processes of ``service`` that the supervisor started (children of it)."""
        wanted = f"services.{service}.worker".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                stat = (entry / "stat").read_text()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                state = stat.rsplit(")", 1)[1].split()[0]
                if ppid == self.proc.pid and state != "Z" and wanted in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
        return sorted(pids)

    def wait_ready(self, timeout: float) -> None:
        """Every API replica answers /readyz and every worker replica its metrics port."""
        urls = [f"{self.api(s, r)}/readyz" for s in self.ports for r in range(self.replicas)]
        urls += [self.worker_metrics(s, r) for s in self.ports for r in range(self.replicas)]
        deadline = time.monotonic() + timeout
        pending = list(urls)
        while pending:
            if self.proc.poll() is not None:
                raise RuntimeError(f"run_all exited with {self.proc.returncode}; logs in {self.log_dir}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"not ready after {timeout}s: {pending}; logs in {self.log_dir}")
            still = []
            for url in pending:
                try:
                    with urllib.request.urlopen(url, timeout=2) as response:
                        if response.status != 200:
                            still.append(url)
                except OSError:
                    still.append(url)
            pending = still
            if pending:
                time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # it stops its children (SIGTERM, then SIGKILL)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()  # the children get SIGTERM through PR_SET_PDEATHSIG
                self.proc.wait(timeout=10)


def start_cluster(run_dir: Path, *, replicas: int, env: dict[str, str]) -> Cluster:
    base = free_port_base(len(SERVICES))
    ports = {service: base + i for i, service in enumerate(SERVICES)}
    child_env = {
        **os.environ,
        **env,
        "SALESLINE_EXTERNAL_INFRA": "1",
        "SALESLINE_DB_HOST": os.environ.get("SALESLINE_DB_HOST", "127.0.0.1"),
        "REPLICAS": str(replicas),
        "RUN_DIR": str(run_dir),
        "VENV": sys.prefix,
        "SALESLINE_SERVICES": ",".join(SERVICES),
        **{f"SALESLINE_{s.upper()}_PORT": str(p) for s, p in ports.items()},
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "run_all.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "run_all.py"), "--keep-infra"],
        cwd=ROOT,
        env=child_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    log.close()
    return Cluster(proc, ports, replicas, run_dir / "logs")

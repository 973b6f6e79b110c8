"""Where the CPU went during a measurement window (Linux ``/proc``; best effort).

Reports, in cores (1.0 = one core busy all window): the whole machine, each named process
with its descendants (e.g. uvicorn's workers; a named process's count leaves out the other
named ones), and PostgreSQL and RabbitMQ when their pid files are found under
``$SALESLINE_RUN_DIR`` (``scripts/infra.sh`` writes them). PostgreSQL and RabbitMQ serve
whoever else uses the instance too: on a shared machine their figures include that work.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def _tree_cpu(root: int, parents: dict[int, int], cpu: dict[int, float], others: set[int]) -> float:
    """CPU seconds of ``root`` and its descendants, less the subtrees of the ``others`` roots."""
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        total += cpu.get(pid, 0.0)
        todo += [child for child in children.get(pid, []) if child not in others]
    return total


def _snapshot() -> tuple[dict[int, int], dict[int, float]]:
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents[int(entry)], cpu[int(entry)] = stat
    return parents, cpu


def _machine_busy() -> tuple[float, float]:
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / TICKS, sum(values) / TICKS


def infra_pids() -> dict[str, int]:
    """PostgreSQL's postmaster and RabbitMQ's node, if this checkout's infra.sh runs them."""
    run_dir = os.environ.get("SALESLINE_RUN_DIR")
    found: dict[str, int] = {}
    if not run_dir:
        return found
    for base in (Path(run_dir), Path(run_dir) / "state"):
        candidates = {
            "postgres": base / "postgres" / "data" / "postmaster.pid",
            "rabbitmq": base / "rabbitmq" / "rabbitmq.pid",
        }
        for name, path in candidates.items():
            with contextlib.suppress(OSError, ValueError, IndexError):
                found.setdefault(name, int(path.read_text().split()[0]))
    return found


class CpuMeter:
    """``start()`` then ``stop()``: cores used per named process tree and by the whole machine."""

    def __init__(self, processes: dict[str, int]) -> None:
        self.processes = {**processes, **infra_pids()}
        self._start: tuple[float, tuple[float, float], dict[str, float]] | None = None

    def _trees(self) -> dict[str, float]:
        parents, cpu = _snapshot()
        roots = set(self.processes.values())
        return {name: _tree_cpu(pid, parents, cpu, roots - {pid}) for name, pid in self.processes.items()}

    def start(self) -> None:
        self._start = (time.monotonic(), _machine_busy(), self._trees())

    def stop(self) -> dict[str, float]:
        assert self._start is not None, "start() first"
        t0, (busy0, total0), trees0 = self._start
        elapsed = time.monotonic() - t0
        busy1, total1 = _machine_busy()
        trees1 = self._trees()
        cores = {name: round((trees1[name] - trees0.get(name, 0.0)) / elapsed, 2) for name in trees1}
        cores["machine"] = round((busy1 - busy0) / elapsed, 2)
        cores["machine_capacity"] = round((total1 - total0) / elapsed, 2)
        return cores


def describe(cores: dict[str, float]) -> str:
    """``machine 1.9/2 (relay 0.4, …, everything else 0.3)``: the rest is other work on the machine."""
    named = {name: value for name, value in cores.items() if name not in ("machine", "machine_capacity")}
    parts = [f"{name} {value:.2f}" for name, value in named.items()]
    parts.append(f"everything else {max(0.0, cores['machine'] - sum(named.values())):.2f}")
    return f"CPU cores used: machine {cores['machine']:.2f}/{cores['machine_capacity']:.0f} (" + ", ".join(parts) + ")"

#!/usr/bin/env python3
"""Process supervisor behind `make run` (standard library only).

1. Loads the local infrastructure's environment (`scripts/infra.sh env`).
2. Runs the migrations (`python -m shared.migrate`) and stops if they fail.
3. Starts, for every service, its API (uvicorn, `create_app` factory) and its worker
   (`python -m services.<name>.worker`), each in its own session with its log in
   `$RUN_DIR/logs/<name>-api.log` / `<name>-worker.log` (the previous run's log is kept as `.1`),
   and the nginx gateway in front of them (`python -m deploy.gateway run`, files in
   `$RUN_DIR/gateway`).
4. Waits until every API answers 200 on `/readyz`, then prints the URLs.
5. Restarts any child that dies (exponential backoff, 1 s up to 30 s).
6. On Ctrl-C / SIGTERM / SIGHUP: SIGTERM to every child, SIGKILL after 10 s, then
   `scripts/infra.sh stop`. A second Ctrl-C kills at once.

Environment:
    SALESLINE_<NAME>_PORT   API port per service (e.g. SALESLINE_SERVICE_DESK_PORT=8004);
                            SALESLINE_GATEWAY_PORT for the nginx gateway (default 8000)
    SALESLINE_API_WORKERS   uvicorn --workers per API (default 1; python -m shared.serve)
    REPLICAS                N copies of every API (ports port + 100*i) and worker (default 1)
    SALESLINE_SERVICES      comma-separated subset to run (default: all)
    SALESLINE_READY_TIMEOUT seconds to wait for /readyz (default 60)
    RUN_DIR                 where logs and the pid file go (default .run)
    VENV                    virtualenv with uvicorn and the project (default .venv)
    SALESLINE_RUN_APP / SALESLINE_RUN_WORKER / SALESLINE_RUN_MIGRATE
                            module templates, default "services.{name}.main:create_app",
                            "services.{name}.worker", "shared.migrate" (to try the supervisor alone)

`run_all.py --stop` signals a running supervisor (pid file) and waits for it to finish.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, default API port). DESIGN.md §6; the gateway is nginx (deploy/gateway), when installed.
SERVICES = [
    ("leads", 8001),
    ("contracts", 8002),
    ("orders", 8003),
    ("service_desk", 8004),
    ("webhooks", 8005),
]
OPTIONAL_SERVICES = [("gateway", 8000)]

STOP_GRACE_S = 10
BACKOFF_MAX_S = 30
HEALTHY_AFTER_S = 60  # a child that ran this long restarts with the shortest backoff again


def say(msg: str) -> None:
    print(f"[run_all {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def env_int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw else default
    except ValueError:
        sys.exit(f"run_all: {name}={raw!r} is not an integer")
    if value < minimum:
        sys.exit(f"run_all: {name} must be >= {minimum}")
    return value


def run_dir() -> Path:
    path = Path(os.environ.get("RUN_DIR") or os.environ.get("SALESLINE_RUN_DIR") or ".run")
    return path if path.is_absolute() else ROOT / path


def tail(path: Path, lines: int = 20) -> str:
    """Last lines of a log without reading all of it."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return "    (no log)"
    # Only the latest start: each one begins with a "==== <time> <command>" header.
    if (start := data.rfind("\n==== ")) >= 0:
        data = data[start + 1 :]
    return "\n".join("    " + line for line in data.splitlines()[-lines:])


def module_exists(module: str, search: list[Path]) -> bool:
    """Find a module's file without importing it (importing needs the venv's packages)."""
    rel = Path(*module.split("."))
    return any((d / rel).with_suffix(".py").is_file() or (d / rel / "__init__.py").is_file() for d in search)


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def infra_env() -> dict[str, str]:
    """The `export` lines of `scripts/infra.sh env`, derived from the same environment we got."""
    out = subprocess.run(
        ["bash", str(ROOT / "scripts" / "infra.sh"), "env"], capture_output=True, text=True, check=True
    ).stdout
    env = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            env[key] = value
    return env


# Children die with us even if we are SIGKILLed (Linux prctl PR_SET_PDEATHSIG).
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):
    _prctl = None


def _child_setup() -> None:
    if _prctl is not None:
        _prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int | None = None  # APIs only
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    backoff: float = 0.0
    restarts: int = 0
    ready: bool = False
    last_error: str = "not probed yet"

    def start(self) -> None:
        log = self.log_path.open("ab")
        log.write(f"\n==== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(self.argv)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
            preexec_fn=_child_setup,
        )
        log.close()
        self.started_at = time.monotonic()
        self.ready = False

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)  # the whole group: uvicorn's --workers too


class Supervisor:
    def __init__(self, children: list[Child]) -> None:
        self.children = children
        self.signals = 0
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum: int, _frame: object) -> None:
        self.signals += 1
        if self.signals == 1:
            say(f"got {signal.Signals(signum).name}, stopping")

    @property
    def stopping(self) -> bool:
        return self.signals > 0

    def watch(self) -> None:
        """Start children that are due; note the ones that died and schedule their restart."""
        now = time.monotonic()
        for c in self.children:
            if c.proc is not None and c.proc.poll() is not None:
                ran = now - c.started_at
                c.backoff = 1.0 if ran >= HEALTHY_AFTER_S or not c.backoff else min(c.backoff * 2, BACKOFF_MAX_S)
                c.next_start = now + c.backoff
                c.restarts += 1
                say(
                    f"{c.name} exited with code {c.proc.returncode} after {ran:.1f}s; "
                    f"restarting in {c.backoff:.0f}s. Log {c.log_path}:\n{tail(c.log_path, 10)}"
                )
                c.proc = None
            if c.proc is None and now >= c.next_start and not self.stopping:
                c.start()

    def check_ready(self) -> None:
        for c in self.children:
            if c.port is None or c.ready or not c.alive():
                continue
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{c.port}/readyz", timeout=2) as resp:
                    c.ready = resp.status == 200
                    c.last_error = f"HTTP {resp.status}"
            except urllib.error.HTTPError as e:
                body = e.read(300).decode("utf-8", "replace")
                c.last_error = f"HTTP {e.code} {body}"
            except (urllib.error.URLError, OSError, ValueError) as e:
                c.last_error = str(getattr(e, "reason", e))

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.stopping:
            self.watch()
            self.check_ready()
            apis = [c for c in self.children if c.port is not None]
            if all(c.ready for c in apis):
                return True
            if time.monotonic() > deadline:
                for c in apis:
                    if not c.ready:
                        state = "running" if c.alive() else "not running"
                        say(f"{c.name} ({state}) not ready: GET http://127.0.0.1:{c.port}/readyz -> {c.last_error}")
                        say(f"tail of {c.log_path}:\n{tail(c.log_path)}")
                for c in self.children:
                    if c.port is None and c.restarts:
                        say(f"{c.name} restarted {c.restarts} times; tail of {c.log_path}:\n{tail(c.log_path)}")
                return False
            time.sleep(0.5)
        return False

    def run_forever(self) -> None:
        while not self.stopping:
            self.watch()
            time.sleep(0.5)

    def stop(self) -> None:
        running = [c for c in self.children if c.alive()]
        if running:
            say(f"stopping {len(running)} processes (SIGTERM, SIGKILL after {STOP_GRACE_S}s)")
        for c in running:
            c.signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        while any(c.alive() for c in running) and time.monotonic() < deadline and self.signals < 2:
            time.sleep(0.1)
        for c in running:
            if c.alive():
                say(f"{c.name} did not stop, SIGKILL")
                c.signal(signal.SIGKILL)
        for c in running:
            if c.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.proc.wait(timeout=5)


def gateway_children(python: Path, env: dict[str, str], logs: Path, replicas: int) -> list[Child]:
    """nginx in front of every API replica (deploy/gateway renders its config from the routers)."""
    if not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        say("nginx not installed (`make install`): running without the gateway")
        return []
    port = env_int("SALESLINE_GATEWAY_PORT", dict(OPTIONAL_SERVICES)["gateway"])
    argv = [str(python), "-m", "deploy.gateway", "run", "--dir", str(logs.parent / "gateway")]
    argv += ["--port", str(port), "--replicas", str(replicas)]
    return [Child("gateway", argv, {**env, "SALESLINE_SERVICE": "gateway"}, logs / "gateway.log", port)]


def build_children(env: dict[str, str], logs: Path) -> list[Child]:
    venv = Path(os.environ.get("VENV", ".venv"))
    venv = venv if venv.is_absolute() else ROOT / venv
    python = venv / "bin" / "python"
    if not os.access(python, os.X_OK):
        sys.exit(f"run_all: {python} not found: run `make install`")

    app_tpl = os.environ.get("SALESLINE_RUN_APP", "services.{name}.main:create_app")
    worker_tpl = os.environ.get("SALESLINE_RUN_WORKER", "services.{name}.worker")
    api_workers = env_int("SALESLINE_API_WORKERS", 1)
    replicas = env_int("REPLICAS", 1)
    search = [Path(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]

    wanted = [s.strip() for s in os.environ.get("SALESLINE_SERVICES", "").split(",") if s.strip()]
    known = {name for name, _ in SERVICES + OPTIONAL_SERVICES}
    if unknown := set(wanted) - known:
        sys.exit(f"run_all: unknown service(s) in SALESLINE_SERVICES: {', '.join(sorted(unknown))}")

    children: list[Child] = []
    missing: list[str] = []
    for name, default_port in SERVICES + OPTIONAL_SERVICES:
        if wanted and name not in wanted:
            continue
        if name == "gateway":
            children += gateway_children(python, env, logs, replicas)
            continue
        app = app_tpl.format(name=name)
        worker = worker_tpl.format(name=name)
        has_app = module_exists(app.split(":")[0], search)
        has_worker = module_exists(worker, search)
        if not has_app:
            missing.append(app)
        if not has_worker:
            missing.append(worker)
        port = env_int(f"SALESLINE_{name.upper()}_PORT", default_port)
        for i in range(replicas):
            suffix = f"-{i + 1}" if i else ""
            child_env = {**env, "SALESLINE_SERVICE": name, "SALESLINE_REPLICA": str(i)}
            # uvicorn's command line; with --workers, connections dealt to the workers in turn.
            argv = [str(python), "-m", "shared.serve", "--factory", app, "--host", "127.0.0.1"]
            argv += ["--port", str(port + 100 * i)]
            if api_workers > 1:
                argv += ["--workers", str(api_workers)]
            children.append(
                Child(f"{name}-api{suffix}", argv, child_env, logs / f"{name}-api{suffix}.log", port + 100 * i)
            )
            if has_worker:
                argv = [str(python), "-m", worker]
                # Each worker's Prometheus metrics (relay, consumers, timers) on API port + 1000.
                worker_env = {**child_env, "SALESLINE_WORKER_METRICS_PORT": str(port + 1000 + 100 * i)}
                children.append(Child(f"{name}-worker{suffix}", argv, worker_env, logs / f"{name}-worker{suffix}.log"))
    if missing:
        sys.exit("run_all: modules not found: " + ", ".join(missing) + " (SALESLINE_SERVICES selects a subset)")
    if not children:
        sys.exit("run_all: nothing to run")
    busy = [str(c.port) for c in children if c.port is not None and not port_free(c.port)]
    if busy:
        sys.exit(f"run_all: port(s) {', '.join(busy)} on 127.0.0.1 already in use (is `make run` running?)")
    return children


def read_pid(pid_file: Path) -> int | None:
    """Pid of a live run_all from the pid file, else None."""
    try:
        pid = int(pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"run_all" in cmdline else None


def stop_running(pid_file: Path) -> int:
    pid = read_pid(pid_file)
    if pid is None:
        print("run_all: not running")
        return 0
    print(f"run_all: stopping pid {pid}")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90  # children's grace + infra stop
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return 0
        time.sleep(0.2)
    print(f"run_all: pid {pid} still running, SIGKILL (children get SIGTERM via PDEATHSIG)")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return 1


def infra_stop(env: dict[str, str]) -> None:
    say("stopping infrastructure (scripts/infra.sh stop)")
    subprocess.run(["bash", str(ROOT / "scripts" / "infra.sh"), "stop"], env=env, check=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stop", action="store_true", help="stop a running supervisor and wait for it")
    parser.add_argument("--keep-infra", action="store_true", help="do not stop PostgreSQL/RabbitMQ on exit")
    args = parser.parse_args()
    os.chdir(ROOT)

    rdir = run_dir()
    pid_file = rdir / "run_all.pid"
    if args.stop:
        return stop_running(pid_file)
    if (other := read_pid(pid_file)) is not None:
        sys.exit(f"run_all: already running (pid {other}); `make stop` first")

    env = dict(os.environ)
    env.update(infra_env())
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    # Every process learns every API port (e.g. for the gateway).
    for name, default_port in SERVICES + OPTIONAL_SERVICES:
        key = f"SALESLINE_{name.upper()}_PORT"
        env[key] = str(env_int(key, default_port))

    logs = rdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    children = build_children(env, logs)
    for c in children:  # keep the previous run's log as .1
        if c.log_path.exists():
            c.log_path.replace(c.log_path.with_name(c.log_path.name + ".1"))

    rdir.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{os.getpid()}\n")
    sup = Supervisor(children)
    ok = False
    try:
        migrate = os.environ.get("SALESLINE_RUN_MIGRATE", "shared.migrate")
        venv_python = str(Path(children[0].argv[0]).parent / "python")
        say(f"migrations: python -m {migrate}")
        rc = subprocess.run([venv_python, "-m", migrate], cwd=ROOT, env=env, check=False).returncode
        if sup.stopping:
            return 130
        if rc != 0:
            say(f"ERROR: migrations failed (exit {rc}); not starting services")
            return 1

        say(f"starting {len(children)} processes, logs in {logs}")
        timeout = env_int("SALESLINE_READY_TIMEOUT", 60)
        if not sup.wait_ready(timeout):
            if not sup.stopping:
                say(f"ERROR: not ready after {timeout}s (see above)")
            return 1 if not sup.stopping else 130

        lines = ["Salesline is running. Ctrl-C (or `make stop`) stops everything."]
        for c in children:
            if c.name == "gateway":
                lines.append(f"  {c.name:<22} http://127.0.0.1:{c.port}/  (ops page; /v1/... to the owning service)")
            elif c.port is not None:
                base = f"http://127.0.0.1:{c.port}"
                lines.append(f"  {c.name:<22} {base}/docs  {base}/redoc  {base}/metrics")
        lines += [
            f"  PostgreSQL  {env.get('SALESLINE_DB_HOST')}:{env.get('SALESLINE_DB_PORT')}"
            f"   RabbitMQ  {env.get('SALESLINE_AMQP_URL')}",
            f"  Logs        {logs}/<service>-api.log, <service>-worker.log",
        ]
        say("\n".join(lines))
        ok = True
        sup.run_forever()
        return 0
    finally:
        sup.stop()
        with contextlib.suppress(OSError):
            if read_pid(pid_file) == os.getpid():
                pid_file.unlink()
        if ok or sup.stopping:
            if not args.keep_infra:
                infra_stop(env)
        else:
            say("infrastructure left running for debugging; `make stop` stops it")


if __name__ == "__main__":
    sys.exit(main())

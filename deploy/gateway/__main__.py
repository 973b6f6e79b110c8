"""``python -m deploy.gateway run``: render the gateway's nginx.conf from the services' routers
and exec nginx in the foreground (what `make run` starts).

Everything nginx writes (pid, temp files, logs) stays in ``--dir``; it listens on 127.0.0.1
only. Run as root, nginx runs as ``www-data`` (setpriv), never as root.

``python -m deploy.gateway render --dir DIR`` writes the compose gateway's nginx.conf and ops
page into DIR (the image's ``gateway-config`` command, run when compose starts).

``python -m deploy.gateway generate`` rewrites the committed Kubernetes files rendered from the
same route map (the services' manifests and the Ingress).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pwd
import shutil
import subprocess
import sys
from pathlib import Path

from deploy.gateway import (
    CONTAINER_PORT,
    DEFAULT_GATEWAY_PORT,
    container_config,
    generated_files,
    local_config,
    local_upstreams,
    route_map,
    write_config,
)

UNPRIVILEGED_USER = "www-data"


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None)
    if found is None:
        sys.exit("gateway: nginx is not installed (`make install` installs it)")
    return found


def _setpriv(user: pwd.struct_passwd) -> list[str]:
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]


def reachable_directory(directory: Path) -> Path:
    """``directory``, or (as root, when the unprivileged user cannot reach it, e.g. a clone under
    /root) one in /var/tmp named after it, as scripts/infra.sh does for PostgreSQL's data."""
    if os.geteuid() != 0:
        return directory
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    parent = directory.parent
    parent.mkdir(parents=True, exist_ok=True)
    if subprocess.run([*_setpriv(user), "--", "test", "-x", str(parent)], check=False).returncode == 0:
        return directory
    fallback = Path("/var/tmp") / f"salesline-gateway-{hashlib.sha256(bytes(directory)).hexdigest()[:12]}"
    print(f"gateway: {UNPRIVILEGED_USER} cannot reach {parent}: using {fallback}", flush=True)
    return fallback


def drop_privileges_argv(directory: Path) -> list[str]:
    """As root: run nginx as an unprivileged user that owns ``directory`` (else nothing to add)."""
    if os.geteuid() != 0:
        return []
    user = pwd.getpwnam(UNPRIVILEGED_USER)
    for path in [directory, *directory.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid)
    # setpriv clears the parent-death signal with the uid change: set it again for nginx.
    return [*_setpriv(user), "--pdeathsig=TERM", "--"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m deploy.gateway", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="render the config and exec nginx in the foreground")
    run.add_argument("--dir", type=Path, required=True, help="config, pid, temp files and logs")
    run.add_argument("--port", type=int, default=int(os.environ.get("SALESLINE_GATEWAY_PORT") or DEFAULT_GATEWAY_PORT))
    run.add_argument("--replicas", type=int, default=int(os.environ.get("REPLICAS") or 1))
    run.add_argument("--check", action="store_true", help="only render and test the config (nginx -t)")
    render = sub.add_parser("render", help="write the compose gateway's nginx.conf and ops page")
    render.add_argument("--dir", type=Path, required=True, help="where the nginx container mounts them")
    render.add_argument("--upstream-port", type=int, default=CONTAINER_PORT, help="the APIs' port (<service>-api)")
    sub.add_parser("generate", help="rewrite the committed Kubernetes manifests and Ingress")
    args = parser.parse_args()

    if args.command == "render":
        conf = write_config(args.dir, container_config(route_map(), str(args.dir), args.upstream_port))
        print(f"wrote {conf} and {args.dir / 'html' / 'index.html'}")
        return

    if args.command == "generate":
        for path, text in generated_files().items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            print(f"wrote {path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path}")
        return

    directory = reachable_directory(args.dir.resolve())
    directory.mkdir(parents=True, exist_ok=True)
    config = local_config(directory, port=args.port, upstreams=local_upstreams(args.replicas), routes=route_map())
    conf = write_config(directory, config)
    argv = [*drop_privileges_argv(directory), nginx_binary(), "-p", str(directory), "-c", str(conf)]
    argv += ["-e", config.error_log]
    argv += ["-t"] if args.check else ["-g", "daemon off;"]
    sys.stdout.flush()
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()

"""``python -m shared.serve``: uvicorn's own command line, with one difference. With
``--workers N`` on a TCP host and port (Linux), each worker listens on its own
``SO_REUSEPORT`` socket, so the kernel spreads connections over the workers by hash.

uvicorn's workers all accept on one shared socket, and whichever wakes first takes the
connections waiting: 32 keep-alive connections split 32/0 or 31/1 between two workers, and one
worker served them all while the other idled (measured with benchmark 3). uvicorn has no option
for it yet (encode/uvicorn#2472), so its supervisor is swapped for :class:`ReusePortMultiprocess`.
"""

from __future__ import annotations

import importlib
import logging
import socket
import sys

from uvicorn.config import STARTUP_FAILURE, Config
from uvicorn.supervisors import Multiprocess

log = logging.getLogger("uvicorn.error")

CAN_SPREAD = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")


def listen_reusing_port(family: int, address: tuple, backlog: int) -> socket.socket:
    """A listening socket in the ``SO_REUSEPORT`` group of ``address``; runs in the worker.

    A worker that cannot bind exits with uvicorn's startup-failure code, which stops the
    supervisor instead of restarting the worker forever."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        log.error("cannot listen on %s: %s", address, exc)
        sys.exit(STARTUP_FAILURE)
    return sock


class WorkerListener:
    """Stands in for the listening socket handed to a worker process: unpickled in the worker,
    it becomes that worker's own socket. The supervisor itself holds none, so a dead worker's
    socket leaves the group and no connection waits on a socket nobody accepts from."""

    def __init__(self, family: int, address: tuple, backlog: int) -> None:
        self.family, self.address, self.backlog = family, address, backlog

    def __reduce__(self):
        return listen_reusing_port, (self.family, self.address, self.backlog)


class ReusePortMultiprocess(Multiprocess):
    """uvicorn's supervisor (restarts, SIGHUP, SIGTTIN/SIGTTOU, shutdown), each worker
    (restarted ones too) on its own listener instead of the socket uvicorn bound."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        if CAN_SPREAD and len(sockets) == 1 and sockets[0].family in (socket.AF_INET, socket.AF_INET6):
            bound = sockets[0]
            # Its address as bound (port 0 resolved), then free it for the workers' group.
            listener = WorkerListener(bound.family, bound.getsockname(), config.backlog)
            bound.close()
            sockets = [listener]  # type: ignore[list-item]
        super().__init__(config, sockets)


def main() -> None:
    # The module, not the ``uvicorn.main`` function the package exports under the same name.
    uvicorn_main = importlib.import_module("uvicorn.main")
    uvicorn_main.Multiprocess = ReusePortMultiprocess  # what its run() starts for --workers > 1
    uvicorn_main.main()


if __name__ == "__main__":
    main()

"""``python -m shared.serve``: uvicorn's own command line, with one difference. With
``--workers N`` on a TCP host and port (Linux), the supervisor accepts the connections and deals
them to the workers in turn, so N workers each get an equal share.

uvicorn's workers all accept on one shared socket, and whichever wakes first takes every
connection waiting: 32 keep-alive connections split 32/0 or 31/1 between two workers, and one
worker served them all while the other idled. One ``SO_REUSEPORT`` listener per worker spreads
them by hash instead, but a hash splits 32 connections 20/12 or worse one time in five, and the
busier worker's p99 doubles (both measured with benchmark 3). uvicorn has no option for it
(encode/uvicorn#2472), so its supervisor and worker are replaced by subclasses here.

How a connection travels: the supervisor's :class:`ConnectionDealer` thread accepts it and sends
its descriptor (``SCM_RIGHTS``) over a ``SOCK_SEQPACKET`` channel to the next worker that said
it is ready; the worker (:class:`DealtServer`) hands it to uvicorn's HTTP protocol with
``loop.connect_accepted_socket``. Only accepting goes through the supervisor, never a request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import logging
import queue
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable

from uvicorn.config import Config
from uvicorn.server import Server
from uvicorn.supervisors import multiprocess
from uvicorn.supervisors.multiprocess import Multiprocess, Process

log = logging.getLogger("uvicorn.error")

CAN_DEAL = sys.platform == "linux" and hasattr(socket, "send_fds")

# What a worker sends the dealer once its application has started.
READY = b"r"
# Sent with each connection's descriptor: a message must carry at least one byte.
CONNECTION = b"c"
# Connections accepted in one go before the dealer looks at its channels again.
ACCEPT_BURST = 64
# How long accepting pauses after an accept failed for want of resources.
ACCEPT_PAUSE_SECONDS = 0.1
# How long a stopping worker waits for the dealer to confirm it will send nothing more.
FAREWELL_SECONDS = 2.0

_WORKER_GONE = (BrokenPipeError, ConnectionResetError, ConnectionRefusedError)


class ConnectionDealer:
    """A thread of the supervisor: accepts on the listening socket and sends each connection to
    the next ready worker, round robin. A worker is dealt to from its ``READY`` until its channel
    closes (it stopped or died), so a restarting worker is never sent a connection to sit on."""

    def __init__(self, listener: socket.socket, backlog: int, on_failure: Callable[[], None]) -> None:
        self.listener = listener
        self.backlog = backlog
        self._on_failure = on_failure
        self._resume_at = 0.0  # after a failed accept (out of descriptors), a pause
        self._added: queue.SimpleQueue[socket.socket] = queue.SimpleQueue()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._selector = selectors.DefaultSelector()
        self._ready: list[socket.socket] = []
        self._turn = 0
        self._listening = False
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="connection-dealer", daemon=True)

    def add(self, channel: socket.socket) -> None:
        """A new worker's end of its channel; called from the supervisor's main thread."""
        self._added.put(channel)
        self._wake()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and close every channel; the workers take the close as a farewell."""
        self._stopping.set()
        if self._thread.ident is None:  # never started: nothing else holds these
            self._close_all()
            return
        self._wake()
        self._thread.join(timeout=10)

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"\0")

    def _run(self) -> None:
        try:
            self.listener.listen(self.backlog)
            self.listener.setblocking(False)
            self._selector.register(self._wake_reader, selectors.EVENT_READ, self._take_added)
            while not self._stopping.is_set():
                # With no worker ready, connections wait in the kernel's accept queue.
                pause = self._resume_at - time.monotonic()
                self._listen(bool(self._ready) and pause <= 0)
                for key, _ in self._selector.select(timeout=pause if pause > 0 else None):
                    key.data(key.fileobj)
        except Exception:
            # A supervisor whose dealer died would keep the port open and answer nothing.
            log.exception("the connection dealer failed; stopping")
            self._on_failure()
        finally:
            self._close_all()

    def _listen(self, wanted: bool) -> None:
        if wanted and not self._listening:
            self._selector.register(self.listener, selectors.EVENT_READ, self._accept)
        elif self._listening and not wanted:
            self._selector.unregister(self.listener)
        self._listening = wanted

    def _take_added(self, wake_reader: socket.socket) -> None:
        with contextlib.suppress(BlockingIOError):
            wake_reader.recv(4096)
        while True:
            try:
                channel = self._added.get_nowait()
            except queue.Empty:
                return
            channel.setblocking(False)
            self._selector.register(channel, selectors.EVENT_READ, self._hear)

    def _hear(self, channel: socket.socket) -> None:
        """``READY`` from a worker, or the end of its channel: it is stopping, or it died."""
        if channel.fileno() < 0:  # dropped while dealing, earlier in this round of events
            return
        try:
            message = channel.recv(16)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if message == READY:
            if channel not in self._ready:
                self._ready.append(channel)
        elif not message:
            self._drop(channel)

    def _drop(self, channel: socket.socket) -> None:
        self._selector.unregister(channel)
        if channel in self._ready:
            self._ready.remove(channel)
        channel.close()  # the worker reads the end of its channel once it has taken the rest

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(ACCEPT_BURST):
            try:
                connection, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:  # e.g. out of descriptors: the connection waits in the queue
                log.warning("could not accept a connection: %s", exc)
                self._resume_at = time.monotonic() + ACCEPT_PAUSE_SECONDS
                return
            with connection:
                self._deal(connection)
            if not self._ready:
                return

    def _deal(self, connection: socket.socket) -> None:
        """Send ``connection`` to the next ready worker; one whose channel is full (a stalled
        worker) is passed over this time. Our copy of the descriptor closes after the send."""
        tries = len(self._ready)
        while tries > 0 and self._ready:
            channel = self._ready[self._turn % len(self._ready)]
            self._turn += 1
            tries -= 1
            try:
                socket.send_fds(channel, [CONNECTION], [connection.fileno()])
                return
            except BlockingIOError:
                continue
            except _WORKER_GONE:
                self._drop(channel)
            except OSError as exc:
                log.warning("could not hand a connection to a worker: %s", exc)
        log.warning("no worker could take a connection; it is closed")

    def _close_all(self) -> None:
        self._ready.clear()
        for key in list(self._selector.get_map().values()):
            if key.fileobj is not self.listener:
                key.fileobj.close()  # type: ignore[union-attr]
        self._selector.close()
        self._wake_writer.close()
        self.listener.close()
        while not self._added.empty():
            self._added.get_nowait().close()


class DealtServer(Server):
    """uvicorn's server in a worker whose connections come from the supervisor's dealer over
    ``sockets[0]``, its channel, instead of from a listening socket."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        assert sockets is not None and len(sockets) == 1, "a dealt worker is given its channel"
        self.channel = sockets[0]
        await super().startup(sockets=[])  # the application's startup; no listener
        loop = asyncio.get_running_loop()
        self._protocol = functools.partial(
            self.config.http_protocol_class,
            config=self.config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        self._opening: set[asyncio.Task] = set()
        self._dealer_gone = asyncio.Event()
        self.channel.setblocking(False)
        loop.add_reader(self.channel.fileno(), self._take_connections)
        self.channel.send(READY)

    def _take_connections(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                message, descriptors, _, _ = socket.recv_fds(self.channel, 16, 16)
            except BlockingIOError:
                return
            except OSError:
                message, descriptors = b"", []
            for descriptor in descriptors:
                opening = loop.create_task(self._open(socket.socket(fileno=descriptor)))
                self._opening.add(opening)
                opening.add_done_callback(self._opening.discard)
            if not message:  # the dealer closed the channel: the supervisor is stopping or gone
                loop.remove_reader(self.channel.fileno())
                self._dealer_gone.set()
                self.should_exit = True
                return

    async def _open(self, connection: socket.socket) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(self._protocol, connection, ssl=self.config.ssl)
        except OSError as exc:  # the client left before we got to it
            log.debug("a dealt connection was gone: %s", exc)
            connection.close()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Tell the dealer to send nothing more, and take what it already sent before closing,
        # so no connection is left inside the channel.
        if not self._dealer_gone.is_set():
            with contextlib.suppress(OSError):
                self.channel.shutdown(socket.SHUT_WR)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._dealer_gone.wait(), FAREWELL_SECONDS)
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.channel.fileno())
        if self._opening:
            await asyncio.wait(self._opening)
        await super().shutdown(sockets)  # closes the channel


class DealtProcess(Process):
    """uvicorn's worker process; given ``[dealer]`` as its sockets, it runs a
    :class:`DealtServer` on a channel of its own that the dealer learns of once it starts."""

    def __init__(self, config: Config, sockets: list) -> None:
        self.dealer = sockets[0] if len(sockets) == 1 and isinstance(sockets[0], ConnectionDealer) else None
        self.dealt = self.dealer is not None
        if self.dealt:
            self.channel, self.worker_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            sockets = [self.worker_end]
        super().__init__(config, sockets)

    def __getstate__(self) -> dict:
        # Pickled into the worker (spawn): the dealer and the supervisor's end stay here, or
        # the worker would keep its own channel open and never see the supervisor go.
        state = self.__dict__.copy()
        for supervisor_only in ("dealer", "channel", "worker_end"):
            state.pop(supervisor_only, None)
        return state

    def start(self) -> None:
        super().start()
        if self.dealt:
            self.worker_end.close()  # the worker has its copy; ours would hide its death
            self.dealer.add(self.channel)

    @property
    def server(self) -> Server:
        if self._server is None:
            self._server = DealtServer(config=self.config) if self.dealt else Server(config=self.config)
        return self._server


class DealingMultiprocess(Multiprocess):
    """uvicorn's supervisor (restarts, SIGHUP, SIGTTIN/SIGTTOU, shutdown) with a
    :class:`ConnectionDealer` on the socket uvicorn bound, when it is one TCP socket."""

    def __init__(self, config: Config, sockets: list[socket.socket]) -> None:
        self.dealer: ConnectionDealer | None = None
        if CAN_DEAL and len(sockets) == 1 and sockets[0].family in (socket.AF_INET, socket.AF_INET6):
            self.dealer = ConnectionDealer(sockets[0], config.backlog, on_failure=lambda: self.should_exit.set())
            sockets = [self.dealer]  # type: ignore[list-item]
        super().__init__(config, sockets)

    def init_processes(self) -> None:
        super().init_processes()
        if self.dealer is None:
            return
        # Deal only once every first worker is up (the kernel queues connections until then):
        # dealt to the first one ready, keep-alive connections would all stay with it.
        for process in self.processes:
            process.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit)
        self.dealer.start()

    def terminate_all(self) -> None:
        if self.dealer is not None:
            self.dealer.stop()
        super().terminate_all()


def main() -> None:
    # What uvicorn's run() starts for --workers > 1, and the worker process it starts. The
    # module, not the ``uvicorn.main`` function the package exports under the same name.
    uvicorn_main = importlib.import_module("uvicorn.main")
    uvicorn_main.Multiprocess = DealingMultiprocess
    multiprocess.Process = DealtProcess
    uvicorn_main.main()


if __name__ == "__main__":
    main()

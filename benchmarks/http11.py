"""A minimal keep-alive HTTP/1.1 client for load generation and polling.

Why not httpx: on this machine an httpx client sharing one pool among 32 concurrent requests
manages about 400 requests/s on a full core, and 32 single-connection clients about 1,200; as
a load generator it would be the bottleneck and take the servers' CPU. This client does about
15,000/s (``GET /healthz``, 2 uvicorn workers), so the servers are what is measured.
"""

from __future__ import annotations

import asyncio


class Http11Client:
    """One keep-alive connection, just enough for the benchmarks' requests.

    Responses must carry ``Content-Length`` (uvicorn sends it for every JSON response).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
        """Send one request (``head`` ends with the blank line); returns the status and body."""
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        self._writer.write(head + body)
        try:
            response = await self._reader.readuntil(b"\r\n\r\n")
            status_line, _, headers = response.partition(b"\r\n")
            length, close = 0, False
            for line in headers.split(b"\r\n"):
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            content = await self._reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        if close:
            self.close()
        return int(status_line.split(b" ", 2)[1]), content

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


def request_head(method: str, path: str, host: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class Http11Pool:
    """A few keep-alive connections shared by many tasks (each request borrows one)."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host = f"{host}:{port}"
        self._idle: asyncio.Queue[Http11Client] = asyncio.Queue()
        for _ in range(size):
            self._idle.put_nowait(Http11Client(host, port))

    async def get(self, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        client = await self._idle.get()
        try:
            return await client.request(request_head("GET", path, self.host, headers))
        finally:
            self._idle.put_nowait(client)

    def close(self) -> None:
        while not self._idle.empty():
            self._idle.get_nowait().close()

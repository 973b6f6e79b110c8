"""``examples/erp_receiver.py`` as an ERP would run it: it verifies, deduplicates replays,
refuses forgeries, and catches up from the event history over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator

import httpx
import uvicorn

from services.webhooks.dispatcher import Dispatcher
from services.webhooks.main import create_app
from tests.conftest import ROOT, token, wait_until
from tests.webhooks.conftest import ERP, consume, order_created, subscribe

EXAMPLE = ROOT / "examples" / "erp_receiver.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _started(server: uvicorn.Server) -> bool:
    return server.started


class Example:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def line(self, timeout: float = 10) -> str:
        assert self.process.stdout is not None
        return (await asyncio.wait_for(self.process.stdout.readline(), timeout)).decode().strip()


@contextlib.asynccontextmanager
async def run_example(*args: str) -> AsyncIterator[Example]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        yield Example(process)
    finally:
        process.terminate()
        await process.wait()


async def test_the_example_verifies_and_prints_each_event_once(
    api: httpx.AsyncClient, engine, dispatcher: Dispatcher
) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/webhooks"
    sub = await subscribe(api, url, event_types=["order.*"])
    async with run_example("--port", str(port), "--secret", sub["secret"]) as example:
        assert await example.line() == f"listening on {url}"
        event = order_created("acme")
        await consume(engine, event)
        await dispatcher.run_once()
        printed = await example.line()
        assert "order.created.v1" in printed and str(event.id) in printed and "acme Ltd." in printed

        [delivery] = (await api.get("/v1/webhook-deliveries", headers=ERP)).json()["items"]
        await api.post(f"/v1/webhook-deliveries/{delivery['id']}/replay", headers=ERP)
        await dispatcher.run_once()
        attempts = (await api.get(f"/v1/webhook-deliveries/{delivery['id']}/attempts", headers=ERP)).json()
        assert [a["response_body"] for a in attempts["items"]] == ["processed", "duplicate, already processed"]

        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url,
                content=b'{"type": "order.created.v1"}',
                headers={"webhook-id": "msg_1", "webhook-timestamp": "1", "webhook-signature": "v1,AAAA"},
            )
        assert forged.status_code == 401
        with contextlib.suppress(TimeoutError):
            extra = await example.line(timeout=0.5)
            raise AssertionError(f"printed again: {extra}")


async def test_the_example_catches_up_from_the_history(settings, engine, clean_db) -> None:
    events = [order_created(f"cust-{i}") for i in range(3)]
    for event in events:
        await consume(engine, event)
    api_port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=api_port, log_level="error"))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until(lambda: _started(server), what="uvicorn started")
        jwt = token("erp-1", "integration")

        async def visible():  # once no older transaction is running anywhere (see test_event_history)
            async with httpx.AsyncClient() as client:
                page = await client.get(
                    f"http://127.0.0.1:{api_port}/v1/events", headers={"Authorization": f"Bearer {jwt}"}
                )
            return len(page.json()["items"]) == 3

        await wait_until(visible, what="the history")
        port = _free_port()
        args = ["--port", str(port), "--secret", "whsec_" + "A" * 43 + "=", "--token", jwt]
        async with run_example(*args, "--catch-up", f"http://127.0.0.1:{api_port}") as example:
            lines = [await example.line(timeout=20) for _ in range(4)]
        assert [str(e.id) in line for e, line in zip(events, lines, strict=False)] == [True] * 3
        assert lines[3] == "caught up: 3 events from the history"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, timeout=10)

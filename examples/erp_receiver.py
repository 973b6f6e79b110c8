"""A small ERP-side receiver for Salesline webhooks: verify, deduplicate, print, catch up.

    .venv/bin/python examples/erp_receiver.py --secret whsec_... [--port 9000] [--state receiver.sqlite3]

It answers ``POST /webhooks``:

- the signature is checked with the Standard Webhooks library (``standardwebhooks``), which also
  refuses a ``webhook-timestamp`` more than 5 minutes off (replayed captures): 401 otherwise;
- the ``webhook-id`` is recorded in SQLite in the same transaction as the (here: printed)
  effect, so a retry or a replay of something already handled is acknowledged and skipped;
- it answers 2xx quickly: anything slow belongs in a queue of your own, because Salesline
  waits at most 15 s and then retries.

With ``--catch-up http://127.0.0.1:8005 --token <integration JWT>`` it first reads the event
history (``GET /v1/events?after=<last event id it processed>``) so nothing sent while it was
down is missed, then listens. The secret can also come from ``WEBHOOK_SECRET``.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

MAX_BODY = 1024 * 1024


class Inbox:
    """The ids already handled, and the last event processed (where a catch-up resumes)."""

    def __init__(self, path: str) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, event_id TEXT, at TEXT)")
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_event ON seen (event_id)")
        self._db.execute("CREATE TABLE IF NOT EXISTS cursor (one INTEGER PRIMARY KEY CHECK (one = 1), event_id TEXT)")

    def handle_once(self, key: str, event: dict) -> bool:
        """Apply ``event`` unless ``key`` (the ``webhook-id``) or the event itself was seen
        (the same event read from the history); returns False for a duplicate."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                known = self._db.execute("SELECT 1 FROM seen WHERE event_id = ?", (event.get("id"),)).fetchone()
                inserted = self._db.execute(
                    "INSERT OR IGNORE INTO seen VALUES (?, ?, datetime('now'))", (key, event.get("id"))
                ).rowcount
                if inserted and not known:
                    apply(event)  # your ERP's work goes here, in the same transaction
                    self._db.execute("INSERT OR REPLACE INTO cursor VALUES (1, ?)", (event.get("id"),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return bool(inserted and not known)

    def last_event_id(self) -> str | None:
        row = self._db.execute("SELECT event_id FROM cursor").fetchone()
        return row[0] if row else None


def apply(event: dict) -> None:
    data = event.get("data", {})
    summary = {k: data[k] for k in ("contract_number", "order_number", "customer_name", "total_amount") if k in data}
    print(f"{event.get('time')} {event.get('type')} {event.get('id')} {json.dumps(summary, ensure_ascii=False)}")
    sys.stdout.flush()


def make_handler(webhook: Webhook, inbox: Inbox, path: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are separate writes: don't wait 40 ms between

        def do_POST(self) -> None:
            if urllib.parse.urlsplit(self.path).path != path:
                return self._answer(404, "not here")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                return self._answer(413, "too large")
            body = self.rfile.read(length)
            try:
                event = webhook.verify(body, dict(self.headers.items()))
            except WebhookVerificationError:
                return self._answer(401, "invalid signature")
            if inbox.handle_once(self.headers["webhook-id"], event):
                return self._answer(200, "processed")
            return self._answer(200, "duplicate, already processed")

        def _answer(self, status: int, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def catch_up(base_url: str, token: str, inbox: Inbox, event_type: str | None = None) -> int:
    """Apply every event of the history after the last one processed; returns how many were new."""
    query = {"limit": "200"}
    if after := inbox.last_event_id():
        query["after"] = after
    if event_type:
        query["type"] = event_type
    url = f"{base_url.rstrip('/')}/v1/events?{urllib.parse.urlencode(query)}"
    applied = 0
    while url:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            page = json.load(response)
            link = response.headers.get("Link")
        for item in page["items"]:
            applied += inbox.handle_once(f"history:{item['id']}", item["envelope"])
        url = urllib.parse.urljoin(base_url, link[1 : link.index(">")]) if link else ""
    return applied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--secret", default=os.environ.get("WEBHOOK_SECRET"), help="whsec_... (or WEBHOOK_SECRET)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--path", default="/webhooks")
    parser.add_argument("--state", default=":memory:", help="SQLite file for seen ids (default: in memory)")
    parser.add_argument("--catch-up", metavar="URL", help="the webhooks service, e.g. http://127.0.0.1:8005")
    parser.add_argument("--token", default=os.environ.get("SALESLINE_TOKEN"), help="integration token for --catch-up")
    parser.add_argument("--type", help="catch up only on these types, e.g. 'order.*' (default: all)")
    args = parser.parse_args(argv)
    if not args.secret:
        parser.error("--secret (or WEBHOOK_SECRET) is required")

    inbox = Inbox(args.state)
    if args.catch_up:
        if not args.token:
            parser.error("--catch-up needs --token (or SALESLINE_TOKEN)")
        applied = catch_up(args.catch_up, args.token, inbox, args.type)
        print(f"caught up: {applied} events from the history", flush=True)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Webhook(args.secret), inbox, args.path))
    host, port = server.server_address[:2]
    print(f"listening on http://{host}:{port}{args.path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Ops commands for dead letters.

    python -m shared.ops dead-letters list orders.contract_signed
    python -m shared.ops dead-letters replay orders.contract_signed [--event-id ID]

Listing peeks without removing (messages are fetched unacked, then returned to the queue).
Replaying moves each dead letter back to its consumer's queue with its retry count reset and
acks it from the dead-letter queue only after the broker confirmed the re-publish; the
consumer's inbox makes a replayed event that had in fact been handled have no second effect.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass

import aio_pika

from shared.bus import ERROR_HEADER, RETRY_HEADER, dead_letter_queue_name
from shared.config import ServiceSettings


@dataclass(frozen=True)
class DeadLetter:
    event_id: str | None
    event_type: str | None
    retries: int
    error: str | None


async def _dead_letters(settings: ServiceSettings, consumer: str, *, replay: bool, event_id: str | None):
    queue_name = settings.queue_name(consumer)
    connection = await aio_pika.connect(settings.amqp_url, timeout=5)
    found: list[DeadLetter] = []
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dlq = await channel.declare_queue(dead_letter_queue_name(queue_name), passive=True)
        held = []
        while (message := await dlq.get(no_ack=False, fail=False)) is not None:
            headers = message.headers or {}
            letter = DeadLetter(
                message.message_id,
                message.type,
                int(headers.get(RETRY_HEADER, 0) or 0),
                str(headers[ERROR_HEADER]) if ERROR_HEADER in headers else None,
            )
            if replay and (event_id is None or event_id == message.message_id):
                headers = {k: v for k, v in headers.items() if k not in (RETRY_HEADER, ERROR_HEADER)}
                await channel.default_exchange.publish(
                    aio_pika.Message(
                        message.body,
                        headers=headers,
                        message_id=message.message_id,
                        type=message.type,
                        content_type=message.content_type,
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                    ),
                    routing_key=queue_name,
                    mandatory=True,
                )
                await message.ack()
                found.append(letter)
            else:
                held.append(message)
                if not replay:
                    found.append(letter)
        for message in held:
            await message.nack(requeue=True)
    return found


async def list_dead_letters(settings: ServiceSettings, consumer: str) -> list[DeadLetter]:
    return await _dead_letters(settings, consumer, replay=False, event_id=None)


async def replay_dead_letters(
    settings: ServiceSettings, consumer: str, *, event_id: str | None = None
) -> list[DeadLetter]:
    """Move dead letters (all, or the one with ``event_id``) back to the consumer's queue."""
    return await _dead_letters(settings, consumer, replay=True, event_id=event_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.ops", description="Salesline ops commands")
    sub = parser.add_subparsers(dest="area", required=True)
    dl = sub.add_parser("dead-letters", help="list or replay a consumer's dead letters")
    dl.add_argument("action", choices=["list", "replay"])
    dl.add_argument("consumer", help="the consumer's name, e.g. orders.contract_signed")
    dl.add_argument("--event-id", help="replay only this event")
    args = parser.parse_args(argv)
    settings = ServiceSettings()
    if args.action == "list":
        letters = asyncio.run(list_dead_letters(settings, args.consumer))
    else:
        letters = asyncio.run(replay_dead_letters(settings, args.consumer, event_id=args.event_id))
    for letter in letters:
        print(json.dumps(letter.__dict__))
    print(f"{len(letters)} dead letters {'replayed' if args.action == 'replay' else 'waiting'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The event catalog is the contract between services: its JSON schemas are snapshotted.

A change shows up here. Adding an optional field is allowed (update the snapshot with
``UPDATE_SNAPSHOTS=1 make test``); removing a field, changing a type or adding a required field
breaks consumers and must be a new ``.vN`` event type instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.events import EVENT_TYPES, CloudEvent, Event, make_envelope
from shared.events.catalog import ContractSigned

SNAPSHOT = Path(__file__).parent / "snapshots" / "event_schemas.json"


def current_schemas() -> dict[str, dict]:
    return {name: EVENT_TYPES[name].model_json_schema() for name in sorted(EVENT_TYPES)}


def test_event_schemas_match_the_snapshot() -> None:
    current = current_schemas()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    recorded = json.loads(SNAPSHOT.read_text())
    for name, old in recorded.items():
        assert name in current, f"event type {name} was removed: publish a new version instead"
        new = current[name]
        removed = set(old.get("properties", {})) - set(new.get("properties", {}))
        assert not removed, f"{name}: fields {sorted(removed)} were removed (breaking: make a new .vN type)"
        added_required = set(new.get("required", [])) - set(old.get("required", []))
        assert not added_required, f"{name}: new required fields {sorted(added_required)} (breaking)"
    assert current == recorded, "event schemas changed: review, then UPDATE_SNAPSHOTS=1 to accept"


def test_every_catalog_type_is_versioned_and_past_tense() -> None:
    for name in EVENT_TYPES:
        *_, version = name.split(".")
        assert version.startswith("v") and version[1:].isdigit(), name


def test_declaring_a_type_twice_fails_at_import() -> None:
    with pytest.raises(TypeError, match="declared twice"):

        class Again(Event, type="contract.signed.v1"):
            pass


def test_an_event_without_a_type_name_is_refused() -> None:
    with pytest.raises(TypeError, match="must declare"):

        class Nameless(Event):
            pass


def test_envelope_is_cloudevents_structured_json() -> None:
    event = ContractSigned.model_validate(
        {
            "contract_id": "7d4cbb47-7ac1-4d0e-9f0b-27b5a1f6b7a1",
            "contract_number": "HT-2026-000001",
            "customer_id": "c-1",
            "customer_name": "ACME",
            "owner_id": "rep-1",
            "currency": "CNY",
            "lines": [],
            "subtotal_amount": "10.00",
            "total_amount": "10.00",
            "payment_terms": "net 30",
            "signed_at": "2026-11-25T00:00:00Z",
        }
    )
    envelope = make_envelope(event, source="/salesline/contracts", subject="x", sequence=3, causation_id="c")
    data = json.loads(envelope.to_json())
    assert data["specversion"] == "1.0"
    assert data["type"] == "contract.signed.v1"
    assert data["source"] == "/salesline/contracts"
    assert data["sequence"] == 3 and data["causationid"] == "c"
    assert data["correlationid"] == data["id"]  # a chain's first event correlates with itself
    assert data["data"]["total_amount"] == "10.00"  # money is a decimal string, never a float
    parsed = CloudEvent.model_validate_json(envelope.to_json())
    assert parsed.typed_data() == event


def test_consumers_ignore_fields_added_later() -> None:
    payload = json.loads(
        make_envelope(
            ContractSigned(
                contract_id="7d4cbb47-7ac1-4d0e-9f0b-27b5a1f6b7a1",
                contract_number="HT-2026-000001",
                customer_id="c-1",
                customer_name="ACME",
                owner_id="rep-1",
                currency="CNY",
                lines=(),
                subtotal_amount="1",
                total_amount="1",
                payment_terms="prepaid",
                signed_at="2026-11-25T00:00:00Z",
            ),
            source="/salesline/contracts",
            subject=None,
        ).to_json()
    )
    payload["data"]["a_field_from_the_future"] = 1
    assert CloudEvent.model_validate(payload).typed_data().customer_id == "c-1"

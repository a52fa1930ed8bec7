"""The AsyncAPI 3 document built from the stream names and the message models."""

from __future__ import annotations

from typing import Any

from faststream.specification.asyncapi.v3_0_0.schema.schema import ApplicationSchema
from streamtune_shared import streams
from streamtune_shared.asyncapi import OPERATIONS, build_asyncapi
from streamtune_shared.schemas import CleanEvent, Event

STREAM_NAMES = {value for name, value in vars(streams).items() if name.isupper() and name != "PAYLOAD_FIELD"}


def refs(node: Any) -> list[str]:
    """Every $ref in a document."""
    if isinstance(node, dict):
        own = [node["$ref"]] if "$ref" in node else []
        return own + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def resolve(document: dict, ref: str) -> Any:
    node = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def test_every_stream_is_a_channel_at_its_own_address():
    channels = build_asyncapi()["channels"]
    assert {c["address"] for c in channels.values()} == STREAM_NAMES


def test_every_reference_resolves_inside_the_document():
    document = build_asyncapi()
    found = refs(document)
    assert "#/components/schemas/Event" in found
    for ref in found:
        assert resolve(document, ref) is not None, ref


def test_the_document_reads_as_asyncapi_3():
    schema = ApplicationSchema.model_validate(build_asyncapi())
    assert schema.asyncapi == "3.0.0"
    assert schema.operations["predictor.receive.events.clean"].action.value == "receive"


def test_message_payloads_are_the_models_json_schemas():
    schemas = build_asyncapi()["components"]["schemas"]
    assert set(schemas["CleanEvent"]["required"]) == {n for n, f in CleanEvent.model_fields.items() if f.is_required()}
    assert schemas["Event"]["additionalProperties"] is False  # extra="forbid" is on the wire contract too
    assert set(schemas["Event"]["properties"]) == set(Event.model_fields)


def test_every_consumed_stream_has_a_producer_and_every_service_appears():
    sent = {o.stream for o in OPERATIONS if o.action == "send"}
    received = {o.stream for o in OPERATIONS if o.action == "receive"}
    assert received <= sent
    assert {o.service for o in OPERATIONS} == {"ingestion", "anonymizer", "trainer", "predictor", "cli"}

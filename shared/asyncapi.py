"""The AsyncAPI 3.0 document of the topics, generated from the same pydantic models that
validate the records, so it cannot drift from the code (`journeyman schemas` writes it)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from shared.contracts import DispatchRequest, ProfileEventRecord, ProfileSnapshot, SegmentChange
from shared.events import EVENT_ADAPTER
from shared.topics import (
    DEAD_LETTER,
    DISPATCH,
    EVENTS,
    PROFILE_EVENTS,
    PROFILES,
    SEGMENT_CHANGES,
    TOPICS,
)

CLOUDEVENTS_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "CloudEvents 1.0 attributes in Kafka binary mode, plus W3C trace context.",
    "properties": {
        "ce_specversion": {"type": "string", "const": "1.0"},
        "ce_id": {"type": "string", "description": "messageId / dispatch id: the dedupe key"},
        "ce_source": {"type": "string", "examples": ["journeyman/profile"]},
        "ce_type": {"type": "string", "examples": ["segment.track", "journeyman.dispatch"]},
        "ce_time": {"type": "string", "format": "date-time"},
        "ce_subject": {"type": "string", "description": "profile id, when known"},
        "content-type": {"type": "string", "const": "application/json"},
        "traceparent": {"type": "string"},
    },
    "required": ["ce_specversion", "ce_id", "ce_source", "ce_type"],
}
DEAD_LETTER_FIELDS = (
    "dlq_reason", "dlq_source_topic", "dlq_source_partition", "dlq_source_offset",
    "dlq_consumer_group", "dlq_failed_at",
)  # fmt: skip
DEAD_LETTER_HEADERS: dict[str, Any] = {
    "type": "object",
    "description": "The original record's headers, plus why and where it failed.",
    "properties": {name: {"type": "string"} for name in DEAD_LETTER_FIELDS},
    "required": ["dlq_reason", "dlq_source_topic", "dlq_source_partition", "dlq_source_offset"],
}


def _schema(model: type[BaseModel] | TypeAdapter[Any]) -> dict[str, Any]:
    if isinstance(model, TypeAdapter):
        return model.json_schema(by_alias=True, ref_template="#/components/schemas/{model}")
    return model.model_json_schema(by_alias=True, ref_template="#/components/schemas/{model}")


def document() -> dict[str, Any]:
    payloads: dict[str, tuple[str, dict[str, Any]]] = {
        EVENTS: ("SegmentMessage", _schema(EVENT_ADAPTER)),
        PROFILE_EVENTS: ("ProfileEventRecord", _schema(ProfileEventRecord)),
        PROFILES: ("ProfileSnapshot", _schema(ProfileSnapshot)),
        SEGMENT_CHANGES: ("SegmentChange", _schema(SegmentChange)),
        DISPATCH: ("DispatchRequest", _schema(DispatchRequest)),
        DEAD_LETTER: ("DeadLetter", {"description": "The original record value, unchanged."}),
    }
    schemas: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in TOPICS:
        name, schema = payloads[spec.name]
        schemas.update(schema.pop("$defs", {}))
        schemas[name] = schema
        headers = DEAD_LETTER_HEADERS if spec.name == DEAD_LETTER else CLOUDEVENTS_HEADERS
        messages[name] = {
            "name": name,
            "contentType": "application/json",
            "headers": headers,
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
        channels[spec.name.replace(".", "-")] = {
            "address": spec.name,
            "description": spec.description,
            "messages": {name: {"$ref": f"#/components/messages/{name}"}},
            "bindings": {
                "kafka": {
                    "partitions": spec.partitions,
                    "topicConfiguration": {
                        "cleanup.policy": [spec.config.get("cleanup.policy", "delete")]
                    },
                }
            },
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Journeyman topics",
            "version": "0.1.0",
            "description": "Records exchanged by the Journeyman services. Every topic is keyed "
            "by profile id (jm.events: by raw identity, user:<userId> or anon:<anonymousId>).",
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "components": {"messages": messages, "schemas": schemas},
    }

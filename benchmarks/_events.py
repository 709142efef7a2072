"""Realistic event payloads, built once in a neutral JSON form and converted per contender.

An event is about 600 bytes of JSON: a model text reply, usage metadata, and a state delta with a
few session keys; every 10th event also writes a ``user:`` key and every 25th an ``app:`` key, the
mix an agent with a little user memory and an app-wide counter produces.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

__all__ = ("event_spec", "spec_size")

_WORDS = (
    "the agent looked up the order and found that the parcel left the warehouse on tuesday "
    "it should arrive within two business days and the tracking number was sent by email "
    "if anything else is needed the assistant can open a ticket or call a human colleague "
)


def event_spec(index: int, *, author: str = "support_agent") -> dict[str, Any]:
    """Return one event in google-adk's snake_case JSON form.

    Args:
        index: Position of the event in its stream; selects the text and which state scopes the
            delta touches.
        author: The event's author.

    Returns:
        A fresh dict that both ``adk_sessions.Event.from_dict`` and google-adk's
        ``Event.model_validate`` accept.
    """
    start = (index * 37) % 80
    text = (_WORDS[start:] + _WORDS[:start])[:170]
    delta: dict[str, Any] = {
        "turn": index,
        "last_intent": ("track_order", "refund", "smalltalk")[index % 3],
        "summary": text[:48],
    }
    if index % 10 == 0:
        delta["user:last_seen"] = time.time()
    if index % 25 == 0:
        delta["app:events_seen"] = index
    return {
        "id": str(uuid.uuid4()),
        "invocation_id": f"e-{uuid.uuid4()}",
        "author": author,
        "timestamp": time.time(),
        "content": {"role": "model", "parts": [{"text": text}]},
        "usage_metadata": {
            "prompt_token_count": 812 + index % 50,
            "candidates_token_count": 64,
            "total_token_count": 876 + index % 50,
        },
        "actions": {"state_delta": delta, "artifact_delta": {}},
    }


def spec_size() -> int:
    """Return the JSON size in bytes of a typical event (for the report).

    Returns:
        ``len(json.dumps(event_spec(1)))``.
    """
    return len(json.dumps(event_spec(1)))

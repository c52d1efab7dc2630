# SPDX-License-Identifier: Apache-2.0
"""Audit payloads -> plugin events: ``audit.k8s.io/v1`` ``Event``, ``EventList`` or a JSON array.

Each audit ``Event`` becomes one plugin event: its payload is the event's JSON (compact), its
timestamp the event's ``stageTimestamp``. As the k8saudit plugin does, a body that is not JSON
or not audit events is rejected as a whole, while single bad events inside a good body (no
``stageTimestamp``, larger than ``maxEventSize``) are skipped and reported, never fatal.

The payload handed to the framework is an :class:`AuditPayload`: ``bytes`` that also carry the
already-parsed document (``.doc``), so extraction does not parse the same JSON a second time.
"""

from __future__ import annotations

import calendar
import json
import re
from typing import Any

__all__ = ["AuditPayload", "PayloadError", "parse_payload", "events_of", "parse_timestamp",
           "DEFAULT_MAX_EVENT_SIZE", "DEFAULT_MAX_BATCH_SIZE"]

#: k8saudit's ``maxEventSize`` default: the largest single event (bytes of its JSON)
DEFAULT_MAX_EVENT_SIZE = 262144
#: k8saudit's ``webhookMaxBatchSize`` default: the largest webhook request body
DEFAULT_MAX_BATCH_SIZE = 12582912

_TS = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))\Z")


class PayloadError(ValueError):
    """The body as a whole is not audit events (answered 400 by the webhook)."""


class AuditPayload(bytes):
    """The JSON bytes of one audit event, plus its parsed form in ``doc``."""

    doc: Any


def parse_timestamp(text: Any) -> int:
    """RFC 3339 (nanoseconds optional) -> ns since the epoch; ValueError when malformed."""
    m = _TS.match(text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"can't parse stageTimestamp {str(text)[:64]!r}")
    y, mo, d, h, mi, s, frac, z, sign, oh, om = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))
    if not z:
        off = int(oh) * 3600 + int(om) * 60
        secs -= off if sign == "+" else -off
    return secs * 1_000_000_000 + (int(frac.ljust(9, "0")) if frac else 0)


def events_of(value: Any) -> list:
    """The audit events (dicts) a parsed JSON value holds: an ``Event``, the items of an
    ``EventList``, or those of a JSON array of either. PayloadError otherwise."""
    if isinstance(value, list):
        out: list = []
        for v in value:
            out.extend(events_of(v))
        return out
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind == "EventList":
            items = value.get("items")
            if isinstance(items, list):
                return items
        elif kind == "Event":
            return [value]
    raise PayloadError("data not recognized as a k8s audit event")


def _one(item: Any, raw: bytes | None, max_event_size: int, extra: dict | None) -> tuple[int, AuditPayload]:
    if not isinstance(item, dict):
        raise ValueError("audit event is not a JSON object")
    if extra:
        item.update(extra)
        raw = None
    ts = parse_timestamp(item.get("stageTimestamp")) if "stageTimestamp" in item else None
    if ts is None:
        raise ValueError("can't read stageTimestamp")
    data = raw if raw is not None else json.dumps(item, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > max_event_size:
        raise ValueError(f"event larger than maxEventSize: size={len(data)}")
    payload = AuditPayload(data)
    payload.doc = item
    return ts, payload


def parse_payload(body: bytes | str, *, max_event_size: int = DEFAULT_MAX_EVENT_SIZE,
                  extra: dict | None = None) -> tuple[list[tuple[int, AuditPayload]], list[str]]:
    """(events as ``(ts_ns, payload)``, problems with single events) of one body.

    ``extra`` adds keys to every event (k8saudit's header-based custom fields). PayloadError
    when the body is not JSON or holds no audit event structure."""
    if isinstance(body, (bytes, bytearray)):
        try:
            text = bytes(body).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"body is not UTF-8: {exc.reason} at byte {exc.start}") from None
    else:
        text = body
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise PayloadError(f"invalid JSON: {exc}"[:200]) from None
    items = events_of(value)
    # a lone Event keeps its bytes as sent: no second serialisation
    raw = body.strip() if isinstance(body, bytes) and isinstance(value, dict) and value.get("kind") == "Event" else None
    events: list[tuple[int, AuditPayload]] = []
    problems: list[str] = []
    for item in items:
        try:
            events.append(_one(item, raw, max_event_size, extra))
        except ValueError as exc:
            problems.append(str(exc))
    return events, problems

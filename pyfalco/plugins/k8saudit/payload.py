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
import json.decoder
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


_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


def _array_spans(s: str, i: int) -> tuple[list, int]:
    """The elements of the JSON array at ``s[i] == '['`` with their source text, and the end."""
    out = []
    i = _WS.match(s, i + 1).end()
    if s[i] == "]":
        return out, i + 1
    while True:
        obj, end = _DECODER.raw_decode(s, i)
        out.append((obj, s[i:end]))
        i = _WS.match(s, end).end()
        if s[i] == ",":
            i = _WS.match(s, i + 1).end()
        elif s[i] == "]":
            return out, i + 1
        else:
            raise ValueError("expected ',' or ']'")


def _scan(s: str) -> list | None:
    """``(event, its JSON text)`` of each item of an EventList body (or of the events of a top-level
    array), parsed once with their text kept, so accepted events need no second serialisation;
    None when the body has another shape (the caller parses it the plain way)."""
    i = _WS.match(s).end()
    if s.startswith("[", i):
        elems, end = _array_spans(s, i)
        if _WS.match(s, end).end() != len(s):
            return None
        out = []
        for obj, text in elems:
            if isinstance(obj, dict) and obj.get("kind") == "Event":
                out.append((obj, text))
            else:
                out.extend((e, None) for e in events_of(obj))
        return out
    if not s.startswith("{", i):
        return None
    top: dict = {}
    items = None
    i = _WS.match(s, i + 1).end()
    if s[i] != "}":
        while True:
            if s[i] != '"':
                return None
            key, i = json.decoder.scanstring(s, i + 1)
            i = _WS.match(s, i).end()
            if s[i] != ":":
                return None
            i = _WS.match(s, i + 1).end()
            if key == "items" and s.startswith("[", i):
                items, i = _array_spans(s, i)
                top[key] = [o for o, _ in items]
            else:
                top[key], i = _DECODER.raw_decode(s, i)
                if key == "items":
                    items = None
            i = _WS.match(s, i).end()
            if s[i] == ",":
                i = _WS.match(s, i + 1).end()
            elif s[i] == "}":
                break
            else:
                return None
    if _WS.match(s, i + 1).end() != len(s) or top.get("kind") != "EventList" or items is None:
        return None
    return items


#: a lone surrogate: what a JSON escape such as "\\ud800" decodes to, which UTF-8 cannot encode
_SURROGATE = re.compile("[\ud800-\udfff]")


def _compact(item: Any) -> bytes:
    """The compact JSON of an event, as UTF-8. A string holding a lone surrogate (sent as the
    escape ``\\udXXX``: valid JSON, decoded by ``json`` to a surrogate) keeps that escape, as
    the text the sender wrote does: the event is kept, as when its own text is the payload."""
    text = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # surrogates only occur inside JSON strings: their escape is the same string
        return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", text).encode()


def _one(item: Any, raw: bytes | str | None, max_event_size: int, extra: dict | None) -> tuple[int, AuditPayload]:
    if not isinstance(item, dict):
        raise ValueError("audit event is not a JSON object")
    if extra:
        item.update(extra)
        raw = None
    ts = parse_timestamp(item.get("stageTimestamp")) if "stageTimestamp" in item else None
    if ts is None:
        raise ValueError("can't read stageTimestamp")
    data = raw.encode() if isinstance(raw, str) else raw
    if data is None or len(data) > max_event_size:
        # the limit is on the compact JSON (as k8saudit measures it), not on pretty-printed input
        data = _compact(item)
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
        spans = _scan(text)
    except (ValueError, IndexError, RecursionError, PayloadError):
        spans = None          # the plain parse below says what is wrong
    if spans is None:
        try:
            value = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise PayloadError(f"invalid JSON: {exc}"[:200]) from None
        # a lone Event keeps its text as sent: no second serialisation
        lone = isinstance(value, dict) and value.get("kind") == "Event"
        spans = [(e, text.strip() if lone else None) for e in events_of(value)]
    events: list[tuple[int, AuditPayload]] = []
    problems: list[str] = []
    for item, raw in spans:
        try:
            events.append(_one(item, raw, max_event_size, extra))
        except ValueError as exc:
            problems.append(str(exc))
    return events, problems

# SPDX-License-Identifier: Apache-2.0
"""Alerts as the outputs see them, and their two renderings: Falco's JSON line and its text line.

An :class:`Alert` is built on the event loop (the fields must be read while the process state
is the event's) and rendered on an output worker. Rendering never lets attacker-controlled
strings break a line or reorder what a reader sees: C0/C1 controls, DEL, the Unicode line and
paragraph separators and the bidi controls are escaped in both renderings (``\\x85``,
``\\u2028``, ``\\u202e`` in text; ``\\u0085``, ``\\u2028``, ``\\u202e`` in JSON), and invalid
UTF-8 (a file name of raw bytes) becomes U+FFFD.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
from typing import Any

__all__ = ["Alert", "PRIORITY_NAMES", "SYSLOG_LEVELS", "hostname", "iso_utc", "text_time", "clean_text",
           "clean_value"]

#: Falco's long priority names by numeric value (0 = Emergency ... 7 = Debug)
PRIORITY_NAMES = ("Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug")
#: syslog(3) levels for the same priorities (LOG_EMERG ... LOG_DEBUG share the numbering)
SYSLOG_LEVELS = (0, 1, 2, 3, 4, 5, 6, 7)

# Characters no rendering may carry raw: C0 controls (tab included), DEL, C1 controls (NEL
# U+0085, CSI U+009B, ...), every Unicode line/paragraph separator (U+2028/2029; LF, VT, FF, CR
# and NEL are controls already) and the bidi controls that reorder what a reader sees (ALM, LRM,
# RLM, LRE/RLE/PDF/LRO/RLO, LRI/RLI/FSI/PDI).
_UNSAFE = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_UNSAFE}]")
#: the same set minus C0 (json.dumps escapes C0 itself); only ever found inside JSON strings,
#: since everything json.dumps writes outside strings is ASCII
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x00": "\\0"}


def _escape(m: re.Match) -> str:
    c = m.group()
    esc = _ESCAPES.get(c)
    if esc is not None:
        return esc
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}"


def _json_escape(m: re.Match) -> str:
    return f"\\u{ord(m.group()):04x}"


def _fix_unicode(s: str) -> str:
    """Lone surrogates (from undecodable bytes) -> U+FFFD, so the text can be encoded as UTF-8."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace") \
            if _only_escapes(s) else s.encode("utf-8", "replace").decode("utf-8")


def _only_escapes(s: str) -> bool:
    try:
        s.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def clean_text(s: str) -> str:
    """A string safe to print on one line: valid UTF-8; controls, line separators and bidi
    controls escaped (``\\n``, ``\\t``, ``\\x85``, ``\\u2028``, ``\\u202e``)."""
    s = _fix_unicode(s)
    return _CONTROL.sub(_escape, s) if _CONTROL.search(s) else s


def clean_value(v: Any) -> Any:
    """A JSON-ready value: strings with valid Unicode, bytes decoded, tuples/lists recursively."""
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, str):
        return _fix_unicode(v)
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (list, tuple)):
        return [clean_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): clean_value(x) for k, x in v.items()}
    return _fix_unicode(str(v))


def hostname() -> str:
    """FALCO_HOSTNAME from the environment (as Falco), else the machine's hostname."""
    return os.environ.get("FALCO_HOSTNAME") or socket.gethostname()


def iso_utc(time_ns: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (the JSON ``time`` key)."""
    sec, frac = divmod(int(time_ns), 1_000_000_000)
    t = _dt.datetime.fromtimestamp(sec, _dt.timezone.utc)
    return f"{t:%Y-%m-%dT%H:%M:%S}.{frac:09d}Z"


def text_time(time_ns: int, iso8601: bool = False) -> str:
    """The text prefix time: ``HH:MM:SS.nnnnnnnnn`` or ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+hhmm`` (local)."""
    sec, frac = divmod(int(time_ns), 1_000_000_000)
    t = _dt.datetime.fromtimestamp(sec).astimezone()
    if iso8601:
        return f"{t:%Y-%m-%dT%H:%M:%S}.{frac:09d}{t:%z}"
    return f"{t:%H:%M:%S}.{frac:09d}"


class Alert:
    """One alert, the single alert type of pyfalco (the engine makes it, the outputs render it, the
    pytest plugin and library users read it).

    ``message`` is the rendered rule output (no time/priority prefix); ``fields`` the typed
    ``output_fields`` (None = null); ``source`` the rules source (``syscall``, ``k8s_audit``,
    ``internal``). Who caused it, when the event had a process: ``pid``, ``tid``, ``ancestors``
    (the pids above it, nearest first) and ``container_id`` (12 characters, ``host`` outside
    containers); None / () when not known. Renderings are cached, so every output that needs one
    computes it once."""

    __slots__ = ("rule", "priority", "time_ns", "source", "tags", "message", "fields", "hostname",
                 "iso8601", "internal", "pid", "tid", "ancestors", "container_id", "_json", "_text")

    def __init__(self, rule: str, priority: int, time_ns: int, message: str, fields: dict | None = None,
                 source: str = "syscall", tags=(), host: str | None = None, iso8601: bool = False,
                 internal: bool = False, *, pid: int | None = None, tid: int | None = None,
                 ancestors: tuple = (), container_id: str | None = None):
        self.rule = rule
        self.priority = int(priority)
        self.time_ns = int(time_ns)
        self.source = source
        self.tags = tags
        self.message = message
        self.fields = fields if fields is not None else {}
        self.hostname = host if host is not None else hostname()
        self.iso8601 = iso8601
        self.internal = internal
        self.pid = pid
        self.tid = tid
        self.ancestors = ancestors
        self.container_id = container_id
        self._json = None
        self._text = None

    @property
    def priority_name(self) -> str:
        """Falco's name of the priority (``Warning``)."""
        return PRIORITY_NAMES[self.priority]

    def output(self) -> str:
        """Falco's ``<time>: <Priority> <message>`` line (unescaped)."""
        return f"{text_time(self.time_ns, self.iso8601)}: {self.priority_name} {self.message}"

    def as_dict(self, include_output: bool = True, include_output_fields: bool = True,
                include_tags: bool = True, include_message: bool = False) -> dict:
        """The JSON object with Falco's keys in Falco's (alphabetical) order."""
        out: dict[str, Any] = {"hostname": clean_value(self.hostname)}
        if include_message:
            out["message"] = clean_value(self.message)
        if include_output:
            out["output"] = clean_value(self.output())
        if include_output_fields:
            fields = {k: clean_value(v) for k, v in self.fields.items()}
            out["output_fields"] = dict(sorted(fields.items()))
        out["priority"] = self.priority_name
        out["rule"] = clean_value(self.rule)
        out["source"] = clean_value(self.source)
        if include_tags and not self.internal:
            out["tags"] = sorted(clean_value(t) for t in self.tags)
        out["time"] = iso_utc(self.time_ns)
        return out

    def json(self, opts: tuple = (True, True, True, False)) -> str:
        """One JSON line (no newline); ``opts`` = (output, output_fields, tags, message)."""
        cached = self._json
        if cached is not None and cached[0] == opts:
            return cached[1]
        text = json.dumps(self.as_dict(*opts), ensure_ascii=False, separators=(",", ":"))
        if _JSON_UNSAFE.search(text):
            text = _JSON_UNSAFE.sub(_json_escape, text)
        self._json = (opts, text)
        return text

    def text(self) -> str:
        """The text line (no newline), control characters escaped."""
        if self._text is None:
            self._text = clean_text(self.output())
        return self._text

    def truncated(self, max_chars: int) -> "Alert":
        """A copy whose message and string fields are cut to ``max_chars`` characters (marked
        with ``...``): for destinations with a size limit (syslog), so that a cut line is still
        one valid line of JSON or text, never a JSON document broken in the middle."""
        def cut(v):
            if isinstance(v, (bytes, bytearray)):
                v = bytes(v).decode("utf-8", "replace")
            if isinstance(v, str) and len(v) > max_chars:
                return v[:max_chars] + "..."
            if isinstance(v, (list, tuple)):
                return [cut(x) for x in v]
            return v
        return Alert(self.rule, self.priority, self.time_ns, cut(self.message),
                     {k: cut(v) for k, v in self.fields.items()}, self.source, self.tags, self.hostname,
                     self.iso8601, self.internal, pid=self.pid, tid=self.tid, ancestors=self.ancestors,
                     container_id=self.container_id)

    def __str__(self) -> str:
        return f"{self.priority_name} {self.rule}: {self.message}"

    def __repr__(self) -> str:
        return f"<Alert {self.priority_name} {self.rule!r} {self.time_ns}>"

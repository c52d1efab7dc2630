# SPDX-License-Identifier: Apache-2.0
"""Alert renderings: Falco's JSON shape field by field, the text line, hostile strings."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pyfalco.outputs import Alert, Formatter

TS = 1470327477881781397  # 2016-08-04T16:17:57.881781397Z (falcosecurity/testing's example)


def make(**kw):
    args = dict(rule="open_from_cat", priority=4, time_ns=TS, message="An open was seen (command=cat /dev/null)",
                fields={"proc.cmdline": "cat /dev/null", "evt.time.iso8601": TS}, source="syscall",
                tags=frozenset({"testing", "process", "filesystem"}), host="test-falco-hostname", iso8601=True)
    args.update(kw)
    return Alert(**args)


def test_json_matches_falcos_shape_field_by_field():
    line = make().json()
    obj = json.loads(line)
    assert list(obj) == sorted(obj) == ["hostname", "output", "output_fields", "priority", "rule", "source",
                                        "tags", "time"]
    assert obj["hostname"] == "test-falco-hostname"
    assert obj["priority"] == "Warning"
    assert obj["rule"] == "open_from_cat"
    assert obj["source"] == "syscall"
    assert obj["tags"] == ["filesystem", "process", "testing"]
    assert obj["time"] == "2016-08-04T16:17:57.881781397Z"
    assert obj["output_fields"] == {"evt.time.iso8601": TS, "proc.cmdline": "cat /dev/null"}
    local = dt.datetime.fromtimestamp(TS // 10**9).astimezone()
    assert obj["output"] == f"{local:%Y-%m-%dT%H:%M:%S}.881781397{local:%z}: Warning An open was seen " \
                            "(command=cat /dev/null)"
    assert "\n" not in line


@pytest.mark.parametrize("prio,name", list(enumerate(
    ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"])))
def test_long_priority_names(prio, name):
    assert json.loads(make(priority=prio).json())["priority"] == name
    assert f": {name} " in make(priority=prio).text()


def test_json_include_switches():
    a = make()
    obj = json.loads(Formatter(True, include_output=False, include_output_fields=False, include_tags=False,
                               include_message=True)(a))
    assert list(obj) == ["hostname", "message", "priority", "rule", "source", "time"]
    assert obj["message"] == "An open was seen (command=cat /dev/null)"


def test_typed_fields_and_null():
    obj = json.loads(make(fields={"fd.lport": 443, "proc.tty": 34817, "proc.name": None,
                                  "evt.is_open_read": True, "evt.time": TS}).json())
    assert obj["output_fields"] == {"evt.is_open_read": True, "evt.time": TS, "fd.lport": 443, "proc.name": None,
                                    "proc.tty": 34817}


def test_text_format_has_falcos_prefix():
    local = dt.datetime.fromtimestamp(TS // 10**9).astimezone()
    assert make(iso8601=False).text() == f"{local:%H:%M:%S}.881781397: Warning An open was seen " \
                                         "(command=cat /dev/null)"


def test_internal_alerts_have_no_tags():
    obj = json.loads(make(internal=True, source="internal", tags=()).json())
    assert "tags" not in obj and obj["source"] == "internal"


HOSTILE = "/tmp/evil\nname\r\"quoted\"\x00\x1b[31m" + b"\xff\xfe".decode("utf-8", "surrogateescape") + "\u2028"


def test_hostile_strings_never_break_a_line():
    a = make(message=f"file={HOSTILE}", fields={"fd.name": HOSTILE, "evt.time": TS})
    text = a.text()
    assert "\n" not in text and "\r" not in text and "\x1b" not in text and "\u2028" not in text
    assert "evil\\nname\\r\"quoted\"\\0\\x1b[31m\ufffd\ufffd\\u2028" in text
    line = a.json()
    assert "\n" not in line and "\r" not in line
    line.encode("utf-8")  # valid UTF-8, no lone surrogates
    obj = json.loads(line)
    assert obj["output_fields"]["fd.name"] == "/tmp/evil\nname\r\"quoted\"\x00\x1b[31m\ufffd\ufffd\u2028"
    assert obj["rule"] == "open_from_cat"


def test_bytes_and_lists_in_fields():
    obj = json.loads(make(fields={"evt.buffer": b"\x00ab\xff", "fd.types": ("file", "ipv4")}).json())
    assert obj["output_fields"]["evt.buffer"] == "\x00ab\ufffd"
    assert obj["output_fields"]["fd.types"] == ["file", "ipv4"]

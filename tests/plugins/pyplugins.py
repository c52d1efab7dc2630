# SPDX-License-Identifier: Apache-2.0
"""Python plugins for the plugin-framework tests (loaded by dotted path ``pyplugins:Name``)."""

from __future__ import annotations

import json

from pyfalco.plugins import FieldSpec, Plugin, PluginInstance


class _Counter(PluginInstance):
    def __init__(self, n: int, garbage: str = ""):
        self.n, self.i, self.garbage = n, 0, garbage
        self.closed = False

    def next_batch(self, timeout):
        if self.i >= self.n:
            return None
        if self.garbage == "raise" and self.i == 2:
            raise RuntimeError("the feed went away")
        if self.garbage == "type" and self.i == 2:
            return [{"not": "bytes"}]
        if self.garbage == "notalist" and self.i == 2:
            return 42
        batch = []
        while self.i < self.n and len(batch) < 2:
            batch.append((1_700_000_000_000_000_000 + self.i, json.dumps({"i": self.i, "user": f"u{self.i}"}).encode()))
            self.i += 1
        return batch

    def close(self):
        self.closed = True


class PyCounter(Plugin):
    """A source of JSON events {"i": n, "user": "u<n>"}; open_params "N[,garbage]"."""

    name = "pycounter"
    description = "counts"
    contact = "tests"
    version = "0.2.0"
    id = 1999
    event_source = "pycounter"

    def init(self, config):
        self.config = json.loads(config) if config else {}
        if self.config.get("fail"):
            raise ValueError("asked to fail")

    def fields(self):
        return [FieldSpec("pc.i", "uint64", desc="counter"), FieldSpec("pc.user", "string", desc="user"),
                FieldSpec("pc.bad", "string", desc="returns garbage"),
                FieldSpec("pc.boom", "string", desc="raises"),
                FieldSpec("pc.tags", "string", is_list=True, desc="tags"),
                FieldSpec("pc.key", "string", arg_required=True, arg_key=True, desc="a key of the event")]

    def open(self, params):
        n, _, garbage = params.partition(",")
        return _Counter(int(n or 3), garbage)

    def extract(self, evt, field, arg):
        doc = evt.cache.get("doc")
        if doc is None:
            doc = evt.cache["doc"] = json.loads(evt.data)
        if field == "pc.i":
            return doc["i"]
        if field == "pc.user":
            return self.config.get("prefix", "") + doc["user"]
        if field == "pc.bad":
            return {"a": 1}
        if field == "pc.boom":
            raise KeyError("boom")
        if field == "pc.tags":
            return ["t%d" % k for k in range(doc["i"])]
        if field == "pc.key":
            v = doc.get(arg)
            return None if v is None else str(v)
        return None


class PyUpper(Plugin):
    """An extractor for the pycounter source: pu.upper = the user, upper-cased."""

    name = "pyupper"
    description = "upper-cases"
    contact = "tests"
    version = "1.0.0"
    extract_event_sources = ["pycounter"]

    def fields(self):
        return [FieldSpec("pu.upper", "string", desc="user, upper-cased")]

    def extract(self, evt, field, arg):
        return json.loads(evt.data)["user"].upper()


class NewApi(PyCounter):
    name = "newapi"
    required_api_version = "4.0.0"


class NoCaps(Plugin):
    name = "nocaps"
    version = "1.0.0"


class BadField(PyUpper):
    name = "badfield"

    def fields(self):
        return [FieldSpec("x.y", "float")]


class NoOpen(Plugin):
    name = "noopen"
    version = "1.0.0"
    id = 4242
    event_source = "noopen"


class _Once(PluginInstance):
    def __init__(self, payload: bytes):
        self.payload = payload

    def next_batch(self, timeout):
        payload, self.payload = self.payload, None
        return None if payload is None else [payload]


class Hostile(Plugin):
    """One event whose payload tries to forge an output line (newline, escape, quote, NUL)."""

    name = "hostile"
    version = "0.1.0"
    id = 4243
    event_source = "hostile"

    def fields(self):
        return [FieldSpec("h.data", "string", desc="the payload")]

    def open(self, params):
        return _Once(b'line1\nFAKE: Critical injected\x1b[31m"quote"\x00end')

    def extract(self, evt, field, arg):
        return evt.data.decode()


class _Slow(PluginInstance):
    def __init__(self, log):
        self.log = log

    def next_batch(self, timeout):
        import time
        self.log.append("in")
        time.sleep(0.5)
        self.log.append("out")
        return [b"x"]

    def close(self):
        self.log.append("close")


class Slow(Plugin):
    """A source whose next_batch takes a while (the order of calls is kept in ``calls``)."""

    name = "slow"
    version = "0.1.0"
    id = 4244
    event_source = "slow"
    calls: list = []

    def fields(self):
        return [FieldSpec("slow.x", "string")]

    def open(self, params):
        return _Slow(self.calls)

    def extract(self, evt, field, arg):
        return "x"


class ProcTag(Plugin):
    """An extractor of syscall events: tag.proc = the process name, upper-cased (read through the
    inspector's event), tag.num = the event number."""

    name = "proctag"
    version = "0.1.0"
    extract_event_sources = ["syscall"]

    def fields(self):
        return [FieldSpec("tag.proc", "string", desc="process name, upper-cased"),
                FieldSpec("tag.num", "uint64", desc="event number")]

    def extract(self, evt, field, arg):
        if field == "tag.num":
            return evt.num
        name = evt.get("proc.name")
        return None if name is None else name.upper()

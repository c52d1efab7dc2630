# SPDX-License-Identifier: Apache-2.0
"""pyfalco.Engine: the one detection loop (event sources -> state -> rules -> alerts).

    import pyfalco

    engine = pyfalco.Engine(rules="my_rules.yaml",
                            capture=pyfalco.Capture("replay", capture_file="trace.scap"))
    for alert in engine.alerts():
        print(alert.rule, alert.priority_name, alert.fields["proc.name"])

Layout (imports point down; the engine is the top of the library, the agent and the pytest
plugin are built on it)::

    capture/events  ->  state (Inspector)  ->  fields  ->  rules  ->  engine  ->  agent / testing / CLI

An :class:`EventSource` delivers the events of one rules ``source:`` (Falco runs one loop per
source; so does the engine). :class:`SyscallSource` is the syscall one: a :class:`pyfalco.Capture`
(live eBPF, kernel module, replay) feeding an :class:`pyfalco.inspector.Inspector`. Its events must
meet the rules right after the state engine parsed them (the next event may close the fd or end
the process a field reads), so the engine drives it through :meth:`SyscallSource.pump` with two
paths behind one interface:

* the batch path (default): the undecoded batch goes to ``Inspector.process_raw``, which decodes
  only the events that change the state or that some rule can match (by the ruleset's index by
  event code) and hands the latter to the rules at once;
* the per-event path (``batch=False``, or a capture without raw batches): every Event is parsed
  by ``Inspector.process`` and matched with ``Ruleset.match``.

Both give the same alerts with the same field values (tests/api/test_engine_paths.py).

Other sources (plugin sources such as Kubernetes audit events) only need ``next_batch``: the
engine evaluates their events against the rules of their source, each source on its own thread
under :meth:`Engine.run` (or the agent). Every alert is one :class:`pyfalco.outputs.Alert` with
``.source`` set.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, Union, runtime_checkable

from .errors import PyFalcoError
from .outputs.alert import Alert
from .rules import LoadResult, Priority, Rule, Ruleset, load_rules
from .rules.provider import FieldProvider
from .syscalls import select_syscalls

__all__ = ["Engine", "EventSource", "SyscallSource", "SourceEvaluator", "Renderer", "RulesSpec", "SourceError"]

log = logging.getLogger("pyfalco.engine")

#: what :class:`Engine` accepts as rules: a path, rules text, a ``(name, text)`` pair, a list of
#: those, a :class:`~pyfalco.rules.LoadResult` or an already compiled :class:`~pyfalco.rules.Ruleset`
RulesSpec = Union[str, "os.PathLike[str]", tuple, Sequence[Any], LoadResult, Ruleset]


class SourceError(PyFalcoError):
    """An event source failed while running (the message names the source and the cause)."""


@runtime_checkable
class EventSource(Protocol):
    """The events of one rules ``source:`` ("syscall", "k8s_audit", or a plugin's event source).

    ``provider`` serves the fields of this source's events (``pyfalco.rules.provider
    .FieldProvider``): the rules of this source compile against it and alerts are rendered with
    it. ``next_batch(timeout)`` waits up to ``timeout`` seconds and returns the events that are
    ready: ``[]`` when nothing came, ``None`` once the source has ended for good (a file read to
    its end). ``open()`` is called once before the first batch, ``close()`` once at the end (and
    must be harmless when repeated).
    """

    source: str
    provider: FieldProvider

    def open(self) -> None: ...

    def next_batch(self, timeout: float) -> Sequence[Any] | None: ...

    def close(self) -> None: ...


class Renderer(Protocol):
    """How one rule's alert is rendered: ``render(evt)`` the message text, ``values(evt)`` the
    typed output fields. A rule's compiled ``output_format`` is one; the agent passes its own
    (``append_output``, ``static_fields``)."""

    def render(self, evt: Any) -> str: ...

    def values(self, evt: Any) -> dict: ...


def _load_spec(rules: Any) -> list:
    """Rules sources for load_rules: paths stay paths, multi-line strings are rules text."""
    if isinstance(rules, (str, os.PathLike)) or (isinstance(rules, tuple) and len(rules) == 2
                                                 and all(isinstance(x, str) for x in rules)):
        rules = [rules]
    if isinstance(rules, (bytes, bytearray)) or not isinstance(rules, Iterable):
        raise TypeError(f"rules: expected a path, rules text or a list of them, not {type(rules).__name__}")
    out: list = []
    for r in rules:
        if isinstance(r, os.PathLike):
            out.append(os.fspath(r))
        elif isinstance(r, str) and "\n" not in r and (os.path.exists(r) or r.endswith((".yaml", ".yml"))):
            out.append(r)
        elif isinstance(r, str):
            out.append(("<rules text>", r))
        elif isinstance(r, tuple) and len(r) == 2:
            out.append(r)
        else:
            raise TypeError(f"rules: expected paths or rules text, found {type(r).__name__}")
    return out


class SyscallSource:
    """The syscall event source: a capture (live eBPF, kernel module or a capture file) whose
    events the state engine (an :class:`~pyfalco.inspector.Inspector`) parses.

    ``capture`` is an open :class:`pyfalco.Capture` (or an object with ``next_batch(timeout_ms)``,
    ``eof`` and ``close()``), or None to open one at :meth:`open` from ``capture_kw`` (the keyword
    arguments of :class:`pyfalco.Capture`; ``syscalls`` default to what the engine's rules need
    plus :func:`pyfalco.capture.state_syscalls`). ``inspector`` is made when not given; the
    rules compile against its ``provider`` before the capture exists, since the capture's syscall
    selection depends on them.
    """

    source = "syscall"

    def __init__(self, capture: Any = None, *, inspector: Any = None, **capture_kw: Any):
        if inspector is None:
            from .inspector import Inspector
            inspector = Inspector(None)
        self.inspector = inspector
        self.provider: FieldProvider = inspector.provider
        self.capture = capture
        self.capture_kw = capture_kw
        self._attached = False
        self._raw = False
        self._ended = False

    def open(self, syscalls: Iterable[str] | None = None) -> None:
        """Opens the capture (unless one was given) and binds it to the inspector."""
        if self.capture is None:
            from .capture import Capture
            kw = dict(self.capture_kw)
            if syscalls is not None and kw.get("engine", "modern_ebpf") != "replay":
                kw.setdefault("syscalls", sorted(syscalls))
            self.capture = Capture(**kw)
        if not self._attached:
            if self.inspector.capture is not self.capture:
                self.inspector.attach(self.capture)
            self._attached = True
        from .capture import Capture
        # undecoded batches only come from libpyfalco's capture (a stand-in gives Events)
        self._raw = isinstance(self.capture, Capture)

    @property
    def ended(self) -> bool:
        """True once the capture has ended (a capture file read to its end)."""
        if not self._ended and self.capture is not None:
            self._ended = bool(self.capture.eof)
        return self._ended

    def next_batch(self, timeout: float) -> list | None:
        """The next batch as InspectedEvents, parsed one by one; their threads and fds are as the
        whole batch left them (use :class:`Engine` to evaluate rules: it matches each event right
        after parsing it). ``[]`` when nothing came, None at the end of a capture file."""
        batch = self.capture.next_batch(int(timeout * 1000))
        if not batch:
            return None if self.ended else []
        process = self.inspector.process
        return [process(evt) for evt in batch]

    def pump(self, timeout: float, evaluator: "SourceEvaluator", batch: bool = True) -> int | None:
        """Reads one batch and evaluates every event right after the state engine parsed it with
        ``evaluator`` (the engine's rules of this source: :meth:`Engine.evaluator`): returns the
        number of events read, 0 when nothing came, None once the capture ended."""
        cap = self.capture
        ms = int(timeout * 1000)
        if batch and self._raw:
            insp = self.inspector
            matchers, wanted = evaluator.code_matchers(insp.event_code_names)
            # events no rule wants and the state only looks up stay in libpyfalco (a replay)
            skip = insp.batch_skip(wanted)
            if skip is not None:
                raw = cap.next_raw_skip_batch(ms, skip)
            else:
                raw = cap.next_raw_batch(ms)
            if raw is None:
                return None if cap.eof else 0
            hit = evaluator.hit

            def on_event(ie: Any) -> None:
                rules = matchers[ie.evt.type](ie)
                if rules:
                    hit(rules, ie, ie.evt.ts)

            buf, n, first = raw[:3]
            insp.process_raw(buf, n, first, wanted, on_event)
            return raw[3] if skip is not None else n
        events = cap.next_batch(ms)
        if not events:
            return None if self.ended else 0
        process = self.inspector.process
        evaluate = evaluator.evaluate
        for evt in events:
            ie = process(evt)
            if ie is not None:
                evaluate(ie, evt.ts)
        return len(events)

    def close(self) -> None:
        """Closes the capture and the inspector (container lookups). Idempotent."""
        cap, self.capture = self.capture, None
        try:
            if cap is not None:
                cap.close()
        finally:
            self.inspector.close()


class SourceEvaluator:
    """The engine's rules of one source over its events: matching, then alerts delivered through
    the engine. Made by :meth:`Engine.evaluator` for each source (and made again when the rules
    or the event hook change: ask the engine for it rather than keeping one)."""

    __slots__ = ("engine", "source", "ruleset", "renderers", "provider", "hook_types")

    def __init__(self, engine: "Engine", source: str) -> None:
        self.engine = engine
        self.source = source
        self.ruleset = engine.ruleset
        self.renderers = engine.renderers
        self.provider = engine.providers.get(source)
        self.hook_types: bytes | None = engine._hook_mask

    def code_matchers(self, code_names: Sequence[str | None]) -> tuple[list, bytes]:
        """The ruleset's matchers by event code for the batch path; with an event hook, the event
        types it watches are wanted too (its matcher then calls the hook first)."""
        ruleset = self.ruleset
        if ruleset is None:
            matchers, mask = _NO_MATCHERS
        else:
            matchers, mask = ruleset.code_matchers(code_names, self.source)
        hook = self.engine.event_hook
        if hook is None:
            return matchers, mask
        key = (id(matchers), self.hook_types)
        cached = self.engine._hooked.get(key)
        if cached is not None and cached[0] is matchers:
            return cached[1]
        hook_mask = self.hook_types if self.hook_types is not None else b"\x01" * 65536
        none = ()

        def hooked(m: Callable | None) -> Callable:
            if m is None:
                return lambda ie: none if hook(ie) else none
            return lambda ie: none if hook(ie) else m(ie)
        out_m = [hooked(m) if hook_mask[c] else m for c, m in enumerate(matchers)]
        out_mask = bytes(a | b for a, b in zip(mask, hook_mask))
        self.engine._hooked = {key: (matchers, (out_m, out_mask))}
        return out_m, out_mask

    def evaluate(self, evt: Any, ts: int | None = None) -> None:
        """Matches one event and delivers its alerts (the per-event path)."""
        # the event hook sees syscall events only (its users read evt.name, evt.record, ...)
        hook = self.engine.event_hook if self.source == "syscall" else None
        if hook is not None and (self.hook_types is None or self.hook_types[_code_of(evt)]) and hook(evt):
            return
        ruleset = self.ruleset
        if ruleset is None:
            return
        rules = ruleset.match(evt, self.source)
        if rules:
            self.hit(rules, evt, ts)

    def hit(self, rules: Sequence[Rule], evt: Any, ts: int | None) -> None:
        """Alerts for rules that matched ``evt``."""
        engine = self.engine
        if ts is None:
            ts = _time_of(evt)
        for rule in rules:
            alert = engine.make_alert(rule, evt, ts, self.renderers)
            if alert is not None:
                engine._deliver(alert, evt)


#: the batch path's (matchers, wanted) when no rules are installed
_NO_MATCHERS: tuple[list, bytes] = ([None] * 65536, bytes(65536))


def _code_of(evt: Any) -> int:
    e = getattr(evt, "evt", evt)
    return getattr(e, "type", 0) or 0


def _time_of(evt: Any) -> int:
    """An event's time (ns since the epoch), or now for events that carry none."""
    ts = getattr(evt, "ts", None)
    return int(ts) if isinstance(ts, int) and ts > 0 else time.time_ns()


class Engine:
    """Rules evaluated over event sources, alerts delivered to a callback or an iterator.

    ``Engine(rules=None, *, capture=None, sources=(), inspector=None, providers=None,
    rule_matching="first", min_priority="debug", enable=(), disable=(), on_alert=None,
    batch=True, hostname=None, iso8601=False)``

    * ``rules``: rules files, rules text, or a list of them (loaded strictly: a ruleset with errors
      raises :class:`pyfalco.rules.RulesLoadError`), a LoadResult, a compiled Ruleset, or None
      (no rules yet: :meth:`load_rules` / :meth:`set_rules`);
    * ``capture``: an open :class:`pyfalco.Capture`, or a dict of its keyword arguments
      (``{"engine": "modern_ebpf"}``: opened by :meth:`open` with the rules' syscalls plus the
      state syscalls), or None for no syscall source;
    * ``sources``: other :class:`EventSource` objects (plugin sources), each evaluated on its own
      thread by :meth:`run`;
    * ``providers``: per source, a provider to use instead of the source's own (one that extends
      it with more fields, such as an extractor plugin's);
    * ``rule_matching``: ``"first"`` (Falco's default) or ``"all"``;
    * ``on_alert``: called with every :class:`pyfalco.outputs.Alert` (from the thread of the
      source that produced it);
    * ``batch``: the syscall source's batch fast path (False: the per-event path; same alerts).
    """

    def __init__(self, rules: RulesSpec | None = None, *, capture: Any = None,
                 sources: Iterable[EventSource] = (), inspector: Any = None,
                 providers: Mapping[str, FieldProvider] | None = None, rule_matching: str = "first",
                 min_priority: Priority | str = Priority.DEBUG, enable: Sequence[str] = (),
                 disable: Sequence[str] = (), on_alert: Callable[[Alert], Any] | None = None,
                 batch: bool = True, hostname: str | None = None, iso8601: bool = False):
        if isinstance(sources, (str, bytes)) or isinstance(sources, EventSource):
            raise TypeError("sources: expected a list of EventSource objects")
        self.syscall: SyscallSource | None = None
        if capture is not None or inspector is not None:
            if isinstance(capture, SyscallSource):
                self.syscall = capture
            elif isinstance(capture, Mapping):
                self.syscall = SyscallSource(None, inspector=inspector, **capture)
            else:
                self.syscall = SyscallSource(capture, inspector=inspector)
        self.sources: list[EventSource] = []
        for src in sources:
            if not isinstance(src, EventSource):
                raise TypeError(f"sources: {src!r} is not an EventSource (source, provider, open, next_batch, close)")
            self.sources.append(src)
        self._extra_providers = dict(providers or {})
        self.providers: dict[str, FieldProvider] = {}
        self._update_providers()
        self.rule_matching = rule_matching
        self.min_priority = min_priority
        #: called with every alert (None: alerts are only queued for :meth:`alerts`)
        self.on_alert = on_alert
        #: called with (alert, event) for every alert, before ``on_alert`` (frameworks that need
        #: the event's context, such as pyfalco.testing)
        self.on_match: Callable[[Alert, Any], Any] | None = None
        #: called with events before matching; returning True keeps the event from the rules
        self.event_hook: Callable[[Any], bool] | None = None
        self._hook_mask: bytes | None = None
        self._hooked: dict = {}
        self.batch = batch
        self.hostname = hostname if hostname is not None else (os.environ.get("FALCO_HOSTNAME")
                                                                or socket.gethostname())
        self.iso8601 = iso8601
        #: whether alerts carry the output fields (the agent leaves them out when no JSON output
        #: asks for them: rendering them costs)
        self.output_fields = True
        self.ruleset: Ruleset | None = None
        self.load_result: LoadResult | None = None
        self.renderers: Mapping[int, Renderer] | None = None
        #: events read, per source (each counter has one writer: its source's thread)
        self.events_by_source: dict[str, int] = {}
        #: per non-syscall source, how often its next_batch found nothing waiting: once it moved
        #: by two after a moment, every event queued before that moment was evaluated
        #: (pyfalco.testing's sync); one writer each, the source's thread
        self.idle_by_source: dict[str, int] = {}
        self.n_alerts = 0
        self._evaluators: dict[str, SourceEvaluator] = {}
        self._threads: list[threading.Thread] = []
        self._ended: set[str] = set()
        self._errors: list[BaseException] = []
        self._stop = threading.Event()
        self._opened = False
        self._threads_started = False
        self._closed = False
        self._queue: queue.SimpleQueue | None = None
        if rules is not None:
            if isinstance(rules, Ruleset):
                self.set_rules(rules)
            elif isinstance(rules, LoadResult):
                if rules.ruleset is None:
                    raise ValueError("rules: the LoadResult has errors (no ruleset)")
                self.load_result = rules
                self.set_rules(rules.ruleset)
            else:
                self.load_rules(rules, enable=enable, disable=disable)
        elif enable or disable:
            raise ValueError("enable/disable need rules")

    # -- sources and providers -------------------------------------------------------------------
    def _update_providers(self) -> None:
        provs: dict[str, FieldProvider] = {}
        if self.syscall is not None:
            provs["syscall"] = self.syscall.provider
        for src in self.sources:
            provs[src.source] = src.provider
        provs.update(self._extra_providers)
        self.providers = provs

    @property
    def inspector(self) -> Any:
        """The syscall source's state engine (None without a syscall source)."""
        return self.syscall.inspector if self.syscall is not None else None

    @property
    def capture(self) -> Any:
        """The syscall source's capture (None before :meth:`open` when the engine opens it)."""
        return self.syscall.capture if self.syscall is not None else None

    def provider(self, source: str = "syscall") -> FieldProvider:
        """The field provider the rules of ``source`` compile against."""
        try:
            return self.providers[source]
        except KeyError:
            raise KeyError(f"no event source {source!r} (sources: {', '.join(sorted(self.providers)) or 'none'})") \
                from None

    def add_source(self, source: EventSource, provider: FieldProvider | None = None) -> None:
        """Adds an event source (before the rules that use it are loaded: they compile against
        its provider); ``provider`` replaces the source's own for its fields."""
        if self._opened:
            raise RuntimeError("add_source after open(): add sources before opening the engine")
        if not isinstance(source, EventSource):
            raise TypeError(f"{source!r} is not an EventSource (source, provider, open, next_batch, close)")
        self.sources.append(source)
        if provider is not None:
            self._extra_providers[source.source] = provider
        self._update_providers()

    def set_provider(self, source: str, provider: FieldProvider) -> None:
        """Uses ``provider`` for the fields of ``source`` (load rules after this)."""
        self._extra_providers[source] = provider
        self._update_providers()

    # -- rules -----------------------------------------------------------------------------------
    def load_rules(self, rules: RulesSpec, *, enable: Sequence[str] = (), disable: Sequence[str] = (),
                   **options: Any) -> Ruleset:
        """Loads rules files or text against the engine's providers and installs them. A ruleset
        with errors raises :class:`pyfalco.rules.RulesLoadError` (nothing is installed).
        ``options`` go to :func:`pyfalco.rules.load_rules` (``selection``, ``plugins``, ...)."""
        if isinstance(rules, Ruleset):
            self.set_rules(rules)
            return rules
        specs = _load_spec(rules)
        provs = dict(self.providers)
        syscall = provs.pop("syscall", None)
        if syscall is None:
            from .fields.provider import StateProvider
            syscall = StateProvider()
        options.setdefault("rule_matching", self.rule_matching)
        options.setdefault("min_priority", self.min_priority)
        result = load_rules(*specs, provider=syscall, extra_sources=provs, strict=True, **options)
        ruleset = result.ruleset
        for pat in enable:
            ruleset.enable(name=pat)
        for pat in disable:
            ruleset.disable(name=pat)
        self.load_result = result
        self.set_rules(ruleset)
        return ruleset

    def set_rules(self, ruleset: Ruleset, renderers: Mapping[int, Renderer] | None = None) -> None:
        """Installs a compiled ruleset (a reload: the capture and the state stay).
        ``renderers`` maps a rule's ``index`` to its :class:`Renderer` (default: the rule's own
        output format)."""
        if not isinstance(ruleset, Ruleset):
            raise TypeError(f"set_rules: expected a Ruleset, not {type(ruleset).__name__}")
        from . import kfilter
        # open buckets test the kernel filter's clauses first (pyfalco.rules.prefilter)
        ruleset.open_analysis = kfilter
        self.ruleset = ruleset
        self.renderers = renderers
        self._hooked = {}
        self._evaluators = {}
        insp = self.inspector
        if insp is not None:
            # container meta events reach the rules from the inspector (per-event path)
            insp.meta_handler = self.evaluator("syscall").evaluate

    def evaluator(self, source: str = "syscall") -> SourceEvaluator:
        """The rules of ``source`` over its events (current rules and event hook)."""
        ev = self._evaluators.get(source)
        if ev is None or ev.ruleset is not self.ruleset:
            ev = self._evaluators[source] = SourceEvaluator(self, source)
        return ev

    def evaluate(self, evt: Any, source: str = "syscall", ts: int | None = None) -> None:
        """Matches one event of ``source`` against the rules of that source and delivers its
        alerts (the per-event path; events read elsewhere, such as plugin events replayed from a
        capture file). ``ts``: the event's time in ns (default: its ``ts``, or now)."""
        self.evaluator(source).evaluate(evt, ts)

    def set_event_hook(self, hook: Callable[[Any], bool] | None, event_types: Iterable[str] | None = None) -> None:
        """Calls ``hook(event)`` with syscall events before the rules see them (a True result keeps
        the event from the rules): those of ``event_types`` (names such as ``"openat"``), or every
        event when None (slower: the batch path then decodes every event)."""
        self.event_hook = hook
        if hook is None or event_types is None:
            self._hook_mask = None
        else:
            from . import _schema
            mask = bytearray(65536)
            for name in event_types:
                for code in _schema.EVENT_CODES_BY_NAME.get(name, ()):
                    mask[code] = 1
            self._hook_mask = bytes(mask)
        self._hooked = {}
        self._evaluators = {}

    def syscalls(self) -> frozenset:
        """The syscalls a live capture needs for the installed rules: the rules' syscalls (minus
        the plain I/O ones Falco ignores) plus :func:`pyfalco.capture.state_syscalls`."""
        types = self.ruleset.event_types() if self.ruleset is not None else frozenset()
        return frozenset(select_syscalls(types).syscalls)

    # -- alerts ----------------------------------------------------------------------------------
    def make_alert(self, rule: Rule, evt: Any, ts: int, renderers: Mapping[int, Renderer] | None = None) -> Alert:
        """The alert of ``rule`` for ``evt``: the rendered output and (``output_fields``) the typed
        output fields plus ``evt.time`` (``evt.time.iso8601`` with ``iso8601``)."""
        ro = renderers.get(rule.index) if renderers is not None else None
        if ro is None:
            ro = rule.output_format
        try:
            message = ro.render(evt)
            fields = ro.values(evt) if self.output_fields else {}
        except Exception as exc:  # noqa: BLE001 - one bad field must not stop the loop
            log.warning("rule %r: rendering the output failed: %s", rule.name, exc)
            message, fields = rule.output, {}
        fields["evt.time.iso8601" if self.iso8601 else "evt.time"] = ts
        return Alert(rule.name, int(rule.priority), ts, message, fields, rule.event_source, rule.tags,
                     self.hostname, self.iso8601)

    def _deliver(self, alert: Alert, evt: Any) -> None:
        self.n_alerts += 1
        on_match = self.on_match
        if on_match is not None:
            on_match(alert, evt)
        if self.on_alert is not None:
            self.on_alert(alert)
        if self._queue is not None:
            self._queue.put(alert)

    # -- running ---------------------------------------------------------------------------------
    def attach(self, capture: Any) -> None:
        """Binds an open capture to the syscall source and opens the engine (the agent opens its
        capture itself, after the rules decided the syscall selection)."""
        if self.syscall is None:
            self.syscall = SyscallSource(capture)
            self._update_providers()
        elif self.syscall.capture is not None and self.syscall.capture is not capture:
            raise RuntimeError("the syscall source already has a capture")
        self.syscall.capture = capture
        self.open()

    def open(self) -> "Engine":
        """Opens the syscall source (its capture with :meth:`syscalls` when the engine opens it).
        The other sources start, each on its thread, at the first :meth:`step` (so that no alert
        comes before :meth:`alerts` or :meth:`run` is there to take it). Idempotent."""
        self._check_open()
        if self._opened:
            return self
        if self.syscall is not None:
            self.syscall.open(self.syscalls() if self.syscall.capture is None else None)
        self._opened = True
        return self

    def _start_threads(self) -> None:
        self._threads_started = True
        for src in self.sources:     # every counter exists before a thread writes one
            self.events_by_source.setdefault(src.source, 0)
            self.idle_by_source.setdefault(src.source, 0)
        for src in self.sources:
            t = threading.Thread(target=self._run_source, args=(src,), name=f"pyfalco-source-{src.source}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _check_open(self) -> None:
        if self._closed:
            from .errors import CaptureClosedError
            raise CaptureClosedError("the engine is closed")

    def _run_source(self, src: EventSource) -> None:
        """One non-syscall source's loop (on its own thread, as Falco runs one per source)."""
        try:
            src.open()
            ev = self.evaluator(src.source)
            name = src.source
            counts = self.events_by_source
            idle = self.idle_by_source
            while not self._stop.is_set():
                batch = src.next_batch(0.1)
                if batch is None:
                    log.info("event source %s ended", src.source)
                    break
                if not batch:
                    idle[name] += 1
                    continue
                if ev.ruleset is not self.ruleset:
                    ev = self.evaluator(src.source)
                evaluate = ev.evaluate
                for evt in batch:
                    evaluate(evt)
                counts[name] += len(batch)
        except BaseException as exc:  # noqa: BLE001 - surfaced on the main loop by step()
            log.debug("event source %s failed", src.source, exc_info=True)
            self._errors.append(SourceError(f"event source {src.source}: {type(exc).__name__}: {exc}"))
        finally:
            self._ended.add(src.source)
            try:
                src.close()
            except Exception as exc:  # noqa: BLE001
                log.error("closing event source %s: %s", src.source, exc)

    @property
    def n_events(self) -> int:
        """Events read so far, every source together."""
        return sum(self.events_by_source.values())

    @property
    def ended(self) -> bool:
        """True once every source has ended (capture files read to their end)."""
        if self.syscall is not None and not self.syscall.ended:
            return False
        return all(src.source in self._ended for src in self.sources)

    def step(self, timeout: float = 0.1) -> int | None:
        """Evaluates one batch of the syscall source (waiting up to ``timeout`` seconds); other
        sources run on their threads. Returns the events read, 0 when nothing came, None once
        every source has ended. A failure of another source's thread is raised here."""
        if not self._opened or self._closed:
            self.open()             # raises CaptureClosedError once closed
        if not self._threads_started:
            self._start_threads()
        if self._errors:
            raise self._errors.pop(0)
        syscall = self.syscall
        if syscall is None or syscall.capture is None or syscall.ended:
            if self.ended:
                return None
            self._stop.wait(timeout)
            return 0
        n = syscall.pump(timeout, self.evaluator("syscall"), self.batch)
        if n is None:
            return None if self.ended else 0
        counts = self.events_by_source
        counts["syscall"] = counts.get("syscall", 0) + n
        return n

    def run(self, on_alert: Callable[[Alert], Any] | None = None, *, duration: float | None = None,
            max_events: int | None = None) -> int:
        """Evaluates until every source ended, ``duration`` seconds passed, ``max_events`` events
        were read or :meth:`stop` was called; returns the number of events read. ``on_alert``
        replaces the engine's callback for this run."""
        self._check_open()
        if on_alert is not None:
            self.on_alert = on_alert
        deadline = None if duration is None else time.monotonic() + duration
        start = self.n_events
        while not self._stop.is_set():
            if self.step(0.1) is None:
                break
            if max_events is not None and self.n_events - start >= max_events:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        return self.n_events - start

    def alerts(self, *, duration: float | None = None, max_events: int | None = None) -> Iterator[Alert]:
        """The alerts, as an iterator, until the sources end (or ``duration``/``max_events``).
        A closed engine raises CaptureClosedError."""
        self._check_open()
        return self._alerts(duration, max_events)

    def _alerts(self, duration: float | None, max_events: int | None) -> Iterator[Alert]:
        q: queue.SimpleQueue = queue.SimpleQueue()
        self._queue = q
        deadline = None if duration is None else time.monotonic() + duration
        seen = 0
        try:
            while not self._stop.is_set():
                while True:
                    try:
                        yield q.get_nowait()
                    except queue.Empty:
                        break
                n = self.step(0.1)
                if n is None:
                    break
                seen += n
                if max_events is not None and seen >= max_events:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
            while True:
                try:
                    yield q.get_nowait()
                except queue.Empty:
                    break
        finally:
            self._queue = None

    def __iter__(self) -> Iterator[Alert]:
        return self.alerts()

    def stop(self) -> None:
        """Asks :meth:`run`, :meth:`alerts` and the source threads to return (any thread)."""
        self._stop.set()

    def close(self) -> None:
        """Stops the source threads and closes every source. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
        self._threads = []
        if self.syscall is not None:
            self.syscall.close()
        for src in self.sources:
            if src.source not in self._ended:
                try:
                    src.close()
                except Exception as exc:  # noqa: BLE001
                    log.error("closing event source %s: %s", src.source, exc)

    def __enter__(self) -> "Engine":
        return self.open()

    def __exit__(self, *exc: Any) -> bool:
        self.close()
        return False

    def __repr__(self) -> str:
        srcs = (["syscall"] if self.syscall is not None else []) + [s.source for s in self.sources]
        n = len(self.ruleset) if self.ruleset is not None else 0
        return f"<Engine sources={srcs} rules={n} {'closed' if self._closed else 'open' if self._opened else 'new'}>"

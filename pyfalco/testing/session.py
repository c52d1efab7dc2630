# SPDX-License-Identifier: Apache-2.0
"""Detection sessions for tests: rules + a capture (live eBPF or a capture file) + the inspector,
collecting alerts, and windows over them with assertions.

    with DetectionSession(rules=["my_rules.yaml"]) as falco:      # live, needs root
        with falco.watch() as w:                                   # alerts of this process tree
            subprocess.run(["cat", "/etc/shadow"])
        w.assert_fired("Read sensitive file untrusted")
        w.assert_not_fired("Write below etc")

    result = replay("incident.scap", rules=["my_rules.yaml"])      # no root, no driver
    result.assert_fired("Terminal shell in container")

    k8s = {"name": "k8saudit", "library_path": "libk8saudit.so",
           "open_params": "http://127.0.0.1:0/k8s-audit"}              # a free loopback port
    with DetectionSession(["k8s_rules.yaml"], engine=None, plugins=[k8s, {"name": "json",
                          "library_path": "libjson.so"}]) as falco:      # plugin sources only
        with falco.watch() as w:
            post_audit_events(falco.webhook_url("k8s_audit"))
        w.assert_fired("Create Privileged Pod")

The detection loop is :class:`pyfalco.Engine` (the agent's): a session adds the background
reader, the sync markers, the optional recording and the windows. A live session reads events
on a background thread. ``sync()`` makes every event that happened
before it visible: it performs a marker syscall (a failed open of a unique path) and waits until
the reader has seen it, so assertions never race the capture. Plugin sources (``plugins=``) run
on the engine's source threads; ``sync()`` waits until each has evaluated everything its plugin
had received before the call (a webhook's POSTs answered 200). It waits as long as the reader
makes progress: ``timeout`` is how long it may make none.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import threading
import time
import uuid
from typing import Any, Callable, Iterable, Sequence

# the library's one alert type: rule, priority (0-7) and priority_name, message, typed fields,
# tags, time_ns, source, and who caused it (pid, tid, ancestors, container_id)
from pyfalco.outputs.alert import Alert

__all__ = ["Alert", "DetectionSession", "Watch", "replay", "default_rules_path", "default_k8s_rules_path",
           "k8saudit_plugins", "DetectionError"]

log = logging.getLogger("pyfalco.testing")

_SYNC_DIR = "/nonexistent-pyfalco-sync"
_OPEN_TYPES = ("open", "openat", "openat2")
#: a sync fails after this long even while the reader makes progress (a marker the driver keeps
#: dropping under a flood of events); ``timeout`` bounds the time without progress
_SYNC_CAP_S = 300.0


class DetectionError(AssertionError):
    """An expectation about alerts did not hold; the message lists what did fire."""


def default_rules_path() -> str:
    """The default ruleset shipped with pyfalco: the wheel's package data (pyfalco/data/), or
    rules/pyfalco_rules.yaml of the source checkout pyfalco runs from."""
    from pyfalco.agent.config import PACKAGED_RULES, packaged_path
    path = packaged_path(PACKAGED_RULES)
    if path is None:
        raise FileNotFoundError("pyfalco's default rules (pyfalco/data/pyfalco_rules.yaml) are missing from this "
                                "installation; reinstall pyfalco or pass rules explicitly")
    return path


def default_k8s_rules_path() -> str:
    """pyfalco's default Kubernetes audit rules (pyfalco_k8s_audit_rules.yaml, next to the default
    ruleset)."""
    from pyfalco.agent.config import PACKAGED_K8S_RULES, packaged_path
    path = packaged_path(PACKAGED_K8S_RULES)
    if path is None:
        raise FileNotFoundError("pyfalco's default k8s audit rules (pyfalco/data/pyfalco_k8s_audit_rules.yaml) are "
                                "missing from this installation; reinstall pyfalco or pass rules explicitly")
    return path


def k8saudit_plugins(open_params: str = "http://127.0.0.1:0/k8s-audit") -> list[dict]:
    """The ``plugins`` entries of the Kubernetes audit source, as a Falco configuration has them:
    the built-in ``k8saudit`` (``open_params``: a webhook URL, port 0 = a free port, or a file
    of audit events) and the ``json`` extractor."""
    return [{"name": "k8saudit", "library_path": "libk8saudit.so", "init_config": "", "open_params": open_params},
            {"name": "json", "library_path": "libjson.so", "init_config": ""}]


Scope = Callable[[Alert], bool]


def _as_rules_sources(rules: Any) -> Any:
    """The rules a session loads: pyfalco's default ruleset when none are given (the engine reads
    paths, rules text and lists of both)."""
    return [default_rules_path()] if rules is None else rules


class _ProgressWait:
    """Waits for a condition while the session's reader makes progress (events read or a plugin
    source polled): fails after ``timeout`` seconds without any, or after _SYNC_CAP_S."""

    def __init__(self, session: "DetectionSession", timeout: float):
        self.session = session
        self.timeout = timeout
        self.start = time.monotonic()

    def _progress(self) -> tuple:
        eng = self.session._engine
        return (eng.n_events, sum(eng.idle_by_source.values()))

    def until(self, cond: Callable[[], bool], what: str, poll: float = 0.02) -> None:
        session = self.session
        last, last_t = self._progress(), time.monotonic()
        with session._sync_cond:
            while not cond():
                if session.error is not None:
                    raise RuntimeError(f"the capture reader stopped: {session.error}") from session.error
                now = time.monotonic()
                cur = self._progress()
                if cur != last:
                    last, last_t = cur, now
                elif now - last_t > self.timeout:
                    raise TimeoutError(f"sync: no progress for {self.timeout}s waiting for {what}")
                if now - self.start > max(_SYNC_CAP_S, self.timeout):
                    raise TimeoutError(f"sync: waited {now - self.start:.0f}s for {what} (the reader kept "
                                       "reading without reaching it)")
                session._sync_cond.wait(poll)


class _AlertSink:
    """Alerts in arrival order, with a condition for waiters."""

    def __init__(self):
        self.alerts: list[Alert] = []
        self.cond = threading.Condition()

    def add(self, alert: Alert) -> None:
        with self.cond:
            self.alerts.append(alert)
            self.cond.notify_all()


class DetectionSession:
    """Rules evaluated over a capture, alerts collected.

    ``DetectionSession(rules=None, *, engine="modern_ebpf", capture_file=None, syscalls=None,
    rule_matching="all", record=None, enable=(), disable=(), buffer_bytes=None, plugins=())``

    * ``rules``: rules file paths and/or rules text (default: pyfalco's default ruleset, plus its
      k8s audit rules with a ``k8s_audit`` plugin source, without the syscall rules when
      ``engine=None``); a ruleset with errors raises :class:`pyfalco.RulesLoadError` at start;
    * ``engine``: ``"modern_ebpf"`` (live, root), ``"kmod"`` or ``"replay"`` (``capture_file``),
      or None for no syscall source (plugin sources only);
    * ``plugins``: Falco ``plugins:`` entries (``name``, ``library_path``, ``init_config``,
      ``open_params``) or a loaded :class:`pyfalco.plugins.registry.PluginSet`; every sourcing
      plugin's source runs on its own thread (opened at start: a webhook's port is bound then,
      see :meth:`webhook_url`); rules files may use their sources and fields and their
      ``required_plugin_versions`` are checked;
    * ``syscalls``: what to capture (default: the rules' syscalls plus the state set, as the agent);
    * ``rule_matching``: ``"all"`` reports every matching rule per event (Falco's default is
      ``"first"``, which hides later rules behind the first match);
    * ``record``: a path to write the live capture to (a .scap file ``replay()`` reads back; syscall
      events: plugin sources are not recorded);
    * ``enable``/``disable``: rule name patterns (``*`` wildcards) to switch on/off after loading.
    """

    def __init__(self, rules: Any = None, *, engine: str = "modern_ebpf", capture_file: str | None = None,
                 syscalls: Iterable[str] | None = None, rule_matching: str = "all", record: str | None = None,
                 enable: Sequence[str] = (), disable: Sequence[str] = (), buffer_bytes: int | None = None,
                 plugins: Any = ()):
        self.rules_sources = _as_rules_sources(rules)
        self._default_rules = rules is None
        self.engine = "replay" if capture_file is not None and engine == "modern_ebpf" else engine
        if isinstance(plugins, (str, bytes)) or (isinstance(plugins, dict)):
            raise TypeError("plugins: expected a list of plugins entries (dicts) or a PluginSet")
        self.plugin_entries = plugins
        #: the loaded plugins (after load()); None without plugins
        self.plugins: Any = None
        self._own_plugins = False
        self.plugin_sources: list = []
        self.capture_file = capture_file
        self.syscalls = syscalls
        self.rule_matching = rule_matching
        self.record_path = record
        self.enable = tuple(enable)
        self.disable = tuple(disable)
        self.buffer_bytes = buffer_bytes
        self.sink = _AlertSink()
        self.load_result = None
        self.ruleset = None
        self.capture = None
        self.inspector = None
        self._engine: Any = None
        self.error: BaseException | None = None
        self._writer = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._synced: set[str] = set()
        self._sync_cond = threading.Condition()
        self._own_tids: set[int] = set()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------
    @property
    def live(self) -> bool:
        """True for a live capture (eBPF or kmod), False for a replay or no syscall source."""
        return self.engine not in (None, "replay")

    def _load_plugins(self) -> Any:
        entries = self.plugin_entries
        if not entries:
            return None
        from pyfalco.plugins.registry import PluginSet, load_entries
        if isinstance(entries, PluginSet):
            return entries
        entries = [] if isinstance(entries, (str, bytes)) else list(entries)
        if not entries or not all(isinstance(e, dict) for e in entries):
            raise TypeError("plugins: expected plugins entries (dicts) or a PluginSet")
        loaded = load_entries(entries)     # the agent's loader: same checks, destroyed on failure
        self._own_plugins = True
        return loaded

    def load(self) -> Any:
        """Loads the plugins and compiles the rules (done by start(); callable alone to validate
        rules)."""
        from pyfalco.engine import Engine
        from pyfalco.inspector import Inspector
        if self.engine is None and not self.plugin_entries:
            raise ValueError("engine=None needs plugins: a session without a syscall source has no events")
        self.plugins = self._load_plugins()
        options: dict[str, Any] = {}
        sources: list = []
        if self.plugins is not None:
            sources = self.plugins.event_sources(self.plugins.providers())
            options["plugins"] = self.plugins.versions()
            if self._default_rules:
                # as the agent: the default k8s audit rules with a k8s_audit source, the syscall
                # ones with a syscall source
                self.rules_sources = ([default_rules_path()] if self.engine is not None else []) + \
                    ([default_k8s_rules_path()] if any(s.source == "k8s_audit" for s in sources) else [])
        try:
            # the inspector is bound to the capture at start(): the rules decide what it captures
            self._engine = Engine(None, inspector=Inspector(None) if self.engine is not None else None,
                                  sources=sources, rule_matching=self.rule_matching)
            self._engine.load_rules(self.rules_sources, enable=self.enable, disable=self.disable, **options)
        except BaseException:
            self._destroy_plugins()
            raise
        self.plugin_sources = sources
        self.load_result = self._engine.load_result
        self.ruleset = self._engine.ruleset
        return self.ruleset

    def _destroy_plugins(self) -> None:
        if self.plugins is not None and self._own_plugins:
            self.plugins.destroy()
        self.plugins = None

    def webhook_url(self, source: str = "k8s_audit", path: str | None = None) -> str:
        """The URL a plugin source's webhook listens on (after start; its ``open_params`` may
        ask for port 0, a free one): ``http://127.0.0.1:PORT/ENDPOINT``."""
        from urllib.parse import urlsplit
        for src in self.plugin_sources:
            if src.source == source:
                inst = src._instance          # opened by start()
                port = getattr(inst, "port", None)
                if port is None:
                    raise ValueError(f"event source {source!r} has no webhook (open_params {src.params!r})")
                if path is None:
                    path = urlsplit(src.params).path or "/k8s-audit"
                scheme = "https" if src.params.startswith("https:") else "http"
                return f"{scheme}://127.0.0.1:{port}{path}"
        raise KeyError(f"no plugin event source {source!r} in this session")

    @property
    def detector(self) -> Any:
        """The :class:`pyfalco.Engine` this session runs (after :meth:`load`); ``engine`` is the
        capture engine's name."""
        return self._engine

    @property
    def n_events(self) -> int:
        """Events read from the capture so far."""
        return self._engine.n_events if self._engine is not None else 0

    def selected_syscalls(self) -> frozenset:
        """The syscalls a live session captures: ``syscalls``, or the rules' syscalls plus the
        state set (as the agent) and the opens of the sync markers."""
        if self.syscalls is not None:
            if isinstance(self.syscalls, str):
                raise TypeError("syscalls: expected a list of syscall names, not a str")
            return frozenset(self.syscalls)
        return self._engine.syscalls() | {"openat", "open"}

    def start(self) -> "DetectionSession":
        """Opens the capture and starts reading (live) or reads the whole file (replay)."""
        if self._started:
            return self
        import pyfalco
        if self.ruleset is None:
            self.load()
        try:
            # plugin sources open now, not on their threads: a webhook's port is known and a
            # failure to open is an error of start()
            for src in self.plugin_sources:
                src.open()
        except BaseException:
            self._engine.close()
            self._destroy_plugins()
            raise
        if self.engine is None:
            self._engine.on_match = self._on_match
            self._started = True
            self._start_reader()
            return self
        if self.live:
            kwargs: dict[str, Any] = {"syscalls": self.selected_syscalls()}
            if self.buffer_bytes:
                kwargs["buffer_bytes"] = self.buffer_bytes
            self.capture = pyfalco.Capture(self.engine, **kwargs)
        else:
            self.capture = pyfalco.Capture("replay", capture_file=self.capture_file)
        eng = self._engine
        try:
            eng.on_match = self._on_match
            eng.attach(self.capture)
            self.inspector = eng.inspector
            self._prepare_accessors()
            if self.record_path:
                from pyfalco.scap import CaptureWriter
                self._writer = CaptureWriter(self.record_path)
                self._writer.write_initial_state(self.inspector.initial_state)
                eng.set_event_hook(self._hook)              # every event is recorded
            else:
                eng.set_event_hook(self._hook, _OPEN_TYPES)  # only opens can be sync markers
        except BaseException:
            self.capture.close()
            self._engine.close()
            self._destroy_plugins()
            raise
        self._started = True
        if self.live or self.plugin_sources:
            self._start_reader()
        else:
            self._read_all()
        return self

    def _start_reader(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="pyfalco-testing", daemon=True)
        self._thread.start()
        ready.wait(5)
        self.sync()

    def stop(self) -> None:
        """Stops reading and closes the capture (idempotent)."""
        if not self._started:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._engine is not None:
            self._engine.close()          # the capture and the inspector
        if self.capture is not None:
            self.capture.close()
        self._destroy_plugins()
        self._started = False

    close = stop

    def __enter__(self) -> "DetectionSession":
        return self.start()

    def __exit__(self, *exc: Any) -> bool:
        self.stop()
        return False

    # -- reading ----------------------------------------------------------------------------------
    def _prepare_accessors(self) -> None:
        prov = self.inspector.provider
        self._acc_pid = prov.accessor("proc.pid", None)
        self._acc_tid = prov.accessor("thread.tid", None)
        self._acc_apid = prov.accessor("proc.apid", None)
        self._acc_cid = prov.accessor("container.id", None)

    def _run(self, ready: threading.Event) -> None:
        self._own_tids.add(threading.get_native_id())
        ready.set()
        step = self._engine.step
        try:
            while not self._stop.is_set():
                if step(0.05) is None:
                    break       # every source ended (a replay, plugin files)
        except BaseException as err:   # surfaced by sync()/alerts so a test fails loudly
            self.error = err
            log.exception("pyfalco.testing: reader stopped")
            with self._sync_cond:
                self._sync_cond.notify_all()

    def _read_all(self) -> None:
        step = self._engine.step
        while step(0) is not None:
            pass

    def _hook(self, ie: Any) -> bool:
        """Every event the engine hands over before the rules: recorded, and a sync marker is
        noted (and kept from the rules)."""
        evt = ie.evt
        if self._writer is not None:
            self._writer.write(evt.record, cpu=evt.cpu)
        if evt.name in _OPEN_TYPES:
            path = evt.get("name")
            if isinstance(path, (bytes, bytearray)):
                path = bytes(path).decode("utf-8", "replace")
            if isinstance(path, str) and path.startswith(_SYNC_DIR):
                with self._sync_cond:
                    self._synced.add(path)
                    self._sync_cond.notify_all()
                return True
        return False

    def _on_match(self, alert: Alert, ie: Any) -> None:
        if alert.source != "syscall":
            self.sink.add(alert)    # plugin events: no process caused them here
            return
        if ie.evt.tid in self._own_tids:
            return      # the session's own threads (the reader, container lookups)
        # who caused it, for the windows' scopes (the engine leaves these to its users)
        try:
            alert.ancestors = tuple(a for a in (self._acc_apid(ie) or ()) if a is not None)
        except Exception:  # noqa: BLE001
            alert.ancestors = ()
        alert.pid = self._acc_pid(ie)
        alert.tid = self._acc_tid(ie)
        alert.container_id = self._acc_cid(ie) or "host"
        self.sink.add(alert)

    # -- synchronisation ----------------------------------------------------------------------------
    def sync(self, timeout: float = 10.0) -> None:
        """Returns once every event that happened before this call has been evaluated: the live
        capture's sync marker was read, a replay read to its end, and each plugin source has
        evaluated what its plugin held. It waits while the reader makes progress; ``timeout`` is
        the time it may go without any (TimeoutError then, naming what it waited for)."""
        if not self._started:
            return
        wait = _ProgressWait(self, timeout)
        if self.live:
            self._sync_marker(wait)
        elif self._thread is not None and self._engine.syscall is not None:
            wait.until(lambda: self._engine.syscall.ended or not self._thread.is_alive(),
                       "the end of the capture file")
        for src in self.plugin_sources:
            self._sync_source(src, wait)

    def _sync_marker(self, wait: "_ProgressWait") -> None:
        if self._container_worker_tid() is not None:
            self._own_tids.add(self._container_worker_tid())
        marker = f"{_SYNC_DIR}/{uuid.uuid4().hex}"

        def seen() -> bool:
            if marker in self._synced:
                return True
            try:    # issued again while waiting: the driver may have dropped it
                os.open(marker, os.O_RDONLY)
            except OSError:
                pass
            return False
        wait.until(seen, "the sync marker (events dropped or the reader is stuck)", poll=0.5)
        self._synced.discard(marker)

    def _sync_source(self, src: Any, wait: "_ProgressWait") -> None:
        idle = self._engine.idle_by_source
        name = src.source
        # two "nothing waiting" answers after now: the second call began after the first had
        # returned, so whatever the plugin held now was taken and evaluated before it
        base = idle.get(name, 0)
        wait.until(lambda: src.ended or idle.get(name, 0) >= base + 2, f"event source {name}")
        if src.error is not None:
            raise RuntimeError(f"event source {name} stopped: {src.error}") from src.error
    def _container_worker_tid(self):
        t = getattr(getattr(self.inspector, "containers", None), "_thread", None)
        return getattr(t, "native_id", None) if t is not None else None

    # -- results ------------------------------------------------------------------------------------
    @property
    def alerts(self) -> list[Alert]:
        """Every alert so far (after a sync when live)."""
        self.sync()
        return list(self.sink.alerts)

    def watch(self, scope: str | Scope | None = None, *, pid: int | None = None,
              containers: Iterable[str] = ()) -> "Watch":
        """A window over the alerts from now on (see :class:`Watch`). ``scope``: ``"tree"`` (the
        default when live: this process, its threads and descendants, plus ``containers``),
        ``"all"`` (the default for replays), or a predicate on :class:`Alert`. Alerts of plugin
        sources (``source != "syscall"``) are in every named scope."""
        return Watch(self, scope=scope, pid=pid, containers=containers)


def _matches(alert: Alert, rule: str | None, priority: str | None, **fields: Any) -> bool:
    if rule is not None and not fnmatch.fnmatchcase(alert.rule, rule):
        return False
    if priority is not None and alert.priority_name.lower() != priority.lower():
        return False
    for k, v in fields.items():
        key = k.replace("__", ".")
        if alert.fields.get(key) != v:
            return False
    return True


class Watch:
    """Alerts between its start and its end (or now), restricted to a scope.

    Usable as a context manager (the window closes at ``__exit__``) or left open (it then always
    extends to the present). Every accessor syncs with the capture first.
    """

    def __init__(self, session: DetectionSession, scope: str | Scope | None = None, *, pid: int | None = None,
                 containers: Iterable[str] = ()):
        self.session = session
        session.sync()
        self.start_index = len(session.sink.alerts)
        self.end_index: int | None = None
        self.root_pid = os.getpid() if pid is None else pid
        self.containers = set(containers)
        if scope is None:
            scope = "tree" if session.live else "all"
        self.scope = scope

    def add_container(self, cid: str) -> None:
        """Counts alerts from this container (full or short id) as in scope."""
        self.containers.add(cid)

    def in_scope(self, a: Alert) -> bool:
        """Whether an alert belongs to this window's scope."""
        if callable(self.scope):
            return bool(self.scope(a))
        if self.scope == "all" or a.source != "syscall":
            return True     # a plugin source's events have no process of this machine
        if a.container_id != "host" and any(c.startswith(a.container_id) or a.container_id.startswith(c)
                                            for c in self.containers if c):
            return True
        return a.pid == self.root_pid or self.root_pid in a.ancestors

    def close(self) -> None:
        """Ends the window at the present (after a sync)."""
        if self.end_index is None:
            self.session.sync()
            self.end_index = len(self.session.sink.alerts)

    def __enter__(self) -> "Watch":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.close()
        return False

    @property
    def alerts(self) -> list[Alert]:
        """The alerts of the window, in scope (after a sync while the window is open)."""
        if self.end_index is None:
            self.session.sync()
        alerts = self.session.sink.alerts[self.start_index:self.end_index]
        return [a for a in alerts if self.in_scope(a)]

    def matching(self, rule: str | None = None, *, priority: str | None = None, **fields: Any) -> list[Alert]:
        """Alerts of a rule (``*`` wildcards), optionally with a priority and output field values
        (``proc__name="cat"`` for ``proc.name``)."""
        return [a for a in self.alerts if _matches(a, rule, priority, **fields)]

    @property
    def fired(self) -> set[str]:
        """Names of the rules that fired in the window."""
        return {a.rule for a in self.alerts}

    def _summary(self) -> str:
        alerts = self.alerts
        if not alerts:
            return "no alert fired"
        lines = [f"{len(alerts)} alert(s) fired:"] + [f"  - {a}" for a in alerts[:30]]
        if len(alerts) > 30:
            lines.append(f"  ... and {len(alerts) - 30} more")
        return "\n".join(lines)

    def assert_fired(self, rule: str, *, count: int | None = None, min_count: int = 1, priority: str | None = None,
                     **fields: Any) -> list[Alert]:
        """Fails unless ``rule`` fired (at least ``min_count`` times, or exactly ``count``)."""
        hits = self.matching(rule, priority=priority, **fields)
        if (count is not None and len(hits) != count) or len(hits) < (min_count if count is None else 0):
            want = f"exactly {count}" if count is not None else f"at least {min_count}"
            raise DetectionError(f"expected {want} alert(s) of rule {rule!r}"
                                 f"{' with ' + repr(fields) if fields else ''}, got {len(hits)}; {self._summary()}")
        return hits

    def assert_not_fired(self, rule: str, **fields: Any) -> None:
        """Fails if ``rule`` (``*`` wildcards) fired."""
        hits = self.matching(rule, **fields)
        if hits:
            raise DetectionError(f"rule {rule!r} fired {len(hits)} time(s), expected none:\n"
                                 + "\n".join(f"  - {a}" for a in hits[:20]))

    def assert_no_alerts(self) -> None:
        """Fails if any rule fired in scope."""
        if self.alerts:
            raise DetectionError(f"expected no alerts; {self._summary()}")

    def assert_fired_only(self, *rules: str) -> None:
        """Fails if a rule outside ``rules`` fired, or one of ``rules`` did not."""
        fired = self.fired
        missing = [r for r in rules if not any(fnmatch.fnmatchcase(f, r) for f in fired)]
        extra = sorted(f for f in fired if not any(fnmatch.fnmatchcase(f, r) for r in rules))
        if missing or extra:
            raise DetectionError(f"missing: {missing}, unexpected: {extra}; {self._summary()}")


class ReplayResult(Watch):
    """The alerts of a whole capture file (``replay()``), with Watch's assertions."""

    def __init__(self, session: DetectionSession):
        super().__init__(session, scope="all")
        self.start_index = 0
        self.end_index = len(session.sink.alerts)


def replay(capture_file: str | os.PathLike, rules: Any = None, *, rule_matching: str = "all",
           enable: Sequence[str] = (), disable: Sequence[str] = ()) -> ReplayResult:
    """Evaluates ``rules`` over a capture file; the result has Watch's assertions and ``.session``."""
    session = DetectionSession(rules, engine="replay", capture_file=os.fspath(capture_file),
                               rule_matching=rule_matching, enable=enable, disable=disable)
    session.start()
    try:
        return ReplayResult(session)
    finally:
        session.stop()

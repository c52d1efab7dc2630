# SPDX-License-Identifier: Apache-2.0
"""The agent: configuration + rules + capture + outputs, one event loop, reloads and signals.

    agent = Agent(load_config("deploy/pyfalco.yaml"))
    code = agent.run()          # until SIGINT/SIGTERM, -M seconds, or the end of a capture file

Detection itself is :class:`pyfalco.Engine` (capture -> state -> rules -> alerts, the batch
fast path, extra event sources on their own threads); the agent keeps the configuration, the
rules loading and reloads, the outputs, metrics and drops. Alerts go to the output queues, never
to a destination directly. Once a second it checks drops, watched files, output drops and the
metrics timer. SIGHUP (or a changed watched file) reloads configuration and rules while the
capture stays open; a reload that fails for any reason (a broken configuration or ruleset, a
missing or unreadable rules file, a rules file that became empty, zero rules, an exception of
the rules library) is refused with one error line and the running configuration and rules kept.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Sequence

import pyfalco
from pyfalco.engine import Engine, EventSource
from pyfalco.errors import ConfigError, PyFalcoError
from pyfalco.outputs import Alert, Outputs, hostname
from pyfalco.plugins.agent import setup_plugins
from pyfalco.plugins.api import FRAMEWORK_API_VERSION, PluginError
from pyfalco.plugins.scapio import replay_hook
from pyfalco.rules.loader import DEFAULT_PLUGINS, ENGINE_VERSION

from . import rulesload
from . import config as _config
from .config import Config, buffer_bytes_of_preset, load_config, parse_duration
from .drops import DropManager
from .metrics import METRICS_RULE, Metrics
from .static_fields import StaticFields
from .syscalls import Selection, select_syscalls
from .webserver import WebServer

__all__ = ["Agent", "AgentError", "versions", "make_inspector"]

log = logging.getLogger("pyfalco.agent")

OUTPUT_KEYS = ("json_output", "json_include_output_property", "json_include_message_property",
               "json_include_output_fields_property", "json_include_tags_property", "buffered_outputs",
               "outputs_queue", "stdout_output", "syslog_output", "file_output", "http_output",
               "program_output", "output_timeout")


class AgentError(PyFalcoError):
    """The agent cannot start (configuration, rules, driver): the message says why."""


def versions() -> dict:
    """Versions as Falco's ``/versions`` endpoint and ``--version`` JSON give them."""
    out = {"pyfalco_version": pyfalco.__version__, "falco_version": pyfalco.__version__,
           "engine_version": ENGINE_VERSION.split(".")[1], "engine_version_semver": ENGINE_VERSION,
           "libs_version": "", "driver_api_version": "", "driver_schema_version": "",
           "default_driver_version": "", "plugin_api_version": FRAMEWORK_API_VERSION}
    try:
        from pyfalco import _native
        out["libs_version"] = _native.lib.pyfalco_version().decode()
        out["default_driver_version"] = out["libs_version"]
        # the transport and event schema versions the library and its drivers speak
        out["driver_api_version"] = _native.lib.pyfalco_driver_api_version().decode()
        out["driver_schema_version"] = _native.lib.pyfalco_driver_schema_version().decode()
    except Exception:  # noqa: BLE001 - the native library is optional for these answers
        pass
    return out


def make_inspector(capture: Any = None) -> Any:
    """The state engine (pyfalco.inspector.Inspector): process/fd/user/container state and the
    field provider the rules compile against. Made before the capture (the rules decide the
    syscall selection) and attached to it once it is open."""
    from pyfalco.inspector import Inspector
    # the capture's selection follows base_syscalls (select_syscalls): nothing is added to it
    return Inspector(capture, add_state_syscalls=False)


def webserver_asked(config: Config, overrides: list[str] | tuple) -> bool:
    """Whether the webserver was asked for explicitly: ``-o webserver.enabled=true`` (the last
    such override wins), or ``webserver.enabled: true`` in a configuration file of the user's
    (not pyfalco's packaged default configuration). Replays start it only then."""
    from . import config as _cfgmod
    asked = None
    for ov in overrides:
        try:
            path, value = _cfgmod.parse_override(ov)
        except ConfigError:
            continue
        if path == ["webserver", "enabled"]:
            asked = value is True
        elif path == ["webserver"] and isinstance(value, dict) and "enabled" in value:
            asked = value["enabled"] is True
    if asked is not None:
        return asked
    packaged = getattr(_cfgmod, "packaged_path", None)
    default = packaged("pyfalco.yaml") if packaged is not None else None
    default = os.path.realpath(default) if default else None
    import yaml
    for f in config.files:
        if default is not None and os.path.realpath(f) == default:
            continue
        try:
            with open(f, "rb") as fh:
                raw = yaml.safe_load(fh)
        except (OSError, yaml.YAMLError):
            continue
        ws = raw.get("webserver") if isinstance(raw, dict) else None
        if isinstance(ws, dict) and ws.get("enabled") is True:
            asked = True
        elif isinstance(ws, dict) and ws.get("enabled") is False:
            asked = False
    return bool(asked)


def retire_timeout(cfg: dict) -> float:
    """Seconds the outputs a reload replaced get to deliver what they hold (off the event loop):
    one delivery attempt (``output_timeout``) plus the stop's grace, at least shutdown's 3.5 s."""
    try:
        per_attempt = float(cfg.get("output_timeout", 2000)) / 1000.0
    except (TypeError, ValueError):
        per_attempt = 2.0
    return max(3.5, per_attempt + 1.5)


def _file_signature(paths: list[str]) -> dict:
    sig = {}
    for p in paths:
        try:
            st = os.stat(p)
            sig[p] = (st.st_mtime_ns, st.st_size)
            if os.path.isdir(p):
                for f in sorted(os.listdir(p)):
                    fp = os.path.join(p, f)
                    if f.endswith((".yml", ".yaml")):
                        st = os.stat(fp)
                        sig[fp] = (st.st_mtime_ns, st.st_size)
        except OSError:
            sig[p] = None
    return sig


def _with_content(files: list[str]) -> set:
    """The files among ``files`` that hold something besides blank lines and comments."""
    out = set()
    for f in files:
        try:
            with open(f, "rb") as fh:
                if any(line.strip() and not line.lstrip().startswith(b"#") for line in fh):
                    out.add(f)
        except OSError:
            pass
    return out


class Agent:
    """One agent run. ``config_path``/``overrides``/``rules_files`` are kept to reload the same
    way the configuration was first loaded."""

    def __init__(self, config: Config, *, overrides: list[str] | tuple = (), rules_files: list[str] | None = None,
                 max_seconds: float | None = None, stdout_stream=None,
                 capture_factory: Callable[..., Any] | None = None,
                 inspector_factory: Callable[[Any], Any] = make_inspector, verbose: bool = False,
                 allow_no_rules: bool = False, resolve_config: bool = False,
                 sources: list[EventSource] | tuple = (), enable_sources: Sequence[str] = (),
                 disable_sources: Sequence[str] = ()):
        self.config = config
        #: started without -c: a reload looks for /etc/pyfalco/pyfalco.yaml again (created since?)
        #: before falling back to the packaged default, and its creation is watched
        self.resolve_config = resolve_config
        #: run with no rules when the configuration names no rules files (--allow-no-rules)
        self.allow_no_rules = allow_no_rules
        self._rules_with_content: set = set()
        self.cfg = config.data
        self.overrides = list(overrides)
        self.rules_files = rules_files
        self.max_seconds = max_seconds
        self.stdout_stream = stdout_stream
        self.capture_factory = capture_factory
        self.inspector_factory = inspector_factory
        self.verbose = verbose
        self.hostname = hostname()
        self.capture: Any = None
        self.inspector: Any = None
        #: the detection engine (made by setup)
        self.engine: Engine | None = None
        #: event sources besides the syscall one (plugin sources), each run on its own thread
        self.sources = list(sources)
        #: --enable-source / --disable-source, and the configured plugins (made by setup)
        self.enable_sources, self.disable_sources = list(enable_sources), list(disable_sources)
        self.plugins: Any = None
        self.provider: Any = None
        self.bundle: rulesload.RulesBundle | None = None
        self.selection: Selection | None = None
        self.outputs: Outputs | None = None
        self.webserver: WebServer | None = None
        self.drops: DropManager | None = None
        self.metrics = Metrics(self.cfg["engine"]["kind"])
        self.exit_code = 0
        self.exit_reason = ""
        self._stop = threading.Event()
        self._reload = False
        self._reload_thread: threading.Thread | None = None   # a reload being prepared off the loop
        self._ws_thread: threading.Thread | None = None       # a webserver restart (after a reload)
        self._ws_lock = threading.Lock()
        self._closing = False
        self._reload_result: Any = None
        self._reopen = False
        self._watch_sig: dict = {}
        self._next_metrics = 0.0
        self._started = False

    # ---- control (signal handlers and other threads call these) ---------------------------
    def request_stop(self, code: int = 0, reason: str = "") -> None:
        if code and not self.exit_code:
            self.exit_code = code
            self.exit_reason = reason
        self._stop.set()

    def request_reload(self) -> None:
        self._reload = True

    def request_reopen(self) -> None:
        self._reopen = True

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM stop, SIGHUP reloads, SIGUSR1 reopens output files (main thread only)."""
        signal.signal(signal.SIGINT, lambda *_: self.request_stop())
        signal.signal(signal.SIGTERM, lambda *_: self.request_stop())
        signal.signal(signal.SIGHUP, lambda *_: self.request_reload())
        signal.signal(signal.SIGUSR1, lambda *_: self.request_reopen())

    # ---- setup ----------------------------------------------------------------------------
    def _provider_for(self, inspector: Any, cfg: dict) -> Any:
        prov = inspector.provider
        prov = StaticFields(prov, cfg["static_fields"]) if cfg["static_fields"] else prov
        # extractor plugins of syscall events add their fields after the inspector's
        return self.plugins.extend(prov) if self.plugins is not None else prov

    def rules_paths(self, cfg: dict) -> list[str]:
        """The rules files and folders this run loads: ``-r`` if given, else ``rules_files``."""
        return list(self.rules_files if self.rules_files is not None else cfg["rules_files"])

    def load_rules(self, cfg: dict, provider: Any) -> rulesload.RulesBundle:
        """Load rules for ``cfg``; raises AgentError with Falco-style messages on errors (a named
        path that cannot be read, rules with errors, no rule enabled)."""
        plugins = self.plugins
        extra = {"extra_sources": plugins.providers, "plugins": {**DEFAULT_PLUGINS, **plugins.versions()}} \
            if plugins is not None else {}
        try:
            result, bundle = rulesload.load(cfg, provider, self.rules_files, allow_no_rules=self.allow_no_rules,
                                            **extra)
        except rulesload.RulesFilesError as exc:
            raise AgentError(str(exc)) from None
        if bundle is None:
            raise AgentError("error loading rules:\n" + result.as_text(verbose=True))
        for w in bundle.warnings:
            log.info("%s", w)
        if result.warnings:
            log.info("rules loaded with %d warning(s)%s", len(result.warnings),
                     ":\n" + result.as_text(verbose=False) if self.verbose else " (-v shows them)")
        if not bundle.files:
            log.warning("running without rules: no rules files named (%s)", rulesload.NO_RULES_FLAG)
        return bundle

    def _engine_settings(self, cfg: dict) -> dict:
        eng = cfg["engine"]
        kind = eng["kind"]
        kw: dict[str, Any] = {"engine": kind}
        if kind == "replay":
            if not eng["replay"]["capture_file"]:
                raise AgentError("engine.kind is replay but engine.replay.capture_file is empty")
            kw["capture_file"] = eng["replay"]["capture_file"]
        elif kind in ("modern_ebpf", "kmod"):
            kw["buffer_bytes"] = buffer_bytes_of_preset(eng[kind]["buf_size_preset"])
            if kind == "modern_ebpf":
                kw["cpus_for_each_buffer"] = eng["modern_ebpf"]["cpus_for_each_buffer"]
            if eng[kind].get("drop_failed_exit"):
                log.warning("engine.%s.drop_failed_exit is not supported by pyfalco's drivers (ignored)", kind)
            kw["snaplen"] = cfg["falco_libs"]["snaplen"]
        return kw

    def _open_capture(self, cfg: dict, syscalls: frozenset) -> Any:
        kw = self._engine_settings(cfg)
        if kw["engine"] != "replay":
            kw["syscalls"] = sorted(syscalls)
        factory = self.capture_factory or pyfalco.Capture
        try:
            return factory(**kw)
        except PyFalcoError as exc:
            raise AgentError(f"opening the {kw['engine']} engine: {exc}") from exc
        except OSError as exc:
            raise AgentError(f"opening the {kw['engine']} engine: {exc}") from exc

    def _watch_paths(self) -> list[str]:
        extra = [p for p in _config.DEFAULT_CONFIG_PATHS if p not in self.config.files] if self.resolve_config else []
        return list(self.config.files) + extra + self.rules_paths(self.cfg)

    def setup(self) -> None:
        """Load rules, open the capture, start outputs and the webserver (raises AgentError)."""
        cfg = self.cfg
        for w in self.config.warnings:
            log.warning("%s", w)
        for n in self.config.notes:
            log.info("%s", n)
        # rules compile against the inspector's provider before the capture exists (the
        # capture's syscall selection depends on the rules); the inspector is attached after
        self.inspector = self.inspector_factory(None)
        try:  # plugin sources run next to the syscall one, each on its own thread
            self.plugins = plugins = setup_plugins(cfg, self.hostname, self.enable_sources, self.disable_sources)
        except PluginError as exc:
            raise AgentError(str(exc)) from None
        self.engine = engine = Engine(inspector=self.inspector if plugins.syscall else None,
                                      sources=self.sources + plugins.sources, hostname=self.hostname,
                                      on_alert=self._emit_alert)
        self.provider = provider = self._provider_for(self.inspector, cfg)
        engine.set_provider("syscall", provider)
        for src, prov in plugins.providers.items():
            engine.set_provider(src, prov)
        if cfg["engine"]["kind"] == "replay" and plugins.providers:
            # a capture's plugin events go to their plugin source's rules (the plugin must be loaded)
            engine.set_event_hook(replay_hook(engine, plugins.plugins, plugins.providers), ["pluginevent"])
        bundle = self.load_rules(cfg, provider)
        if bundle.files:  # which files, as Falco's "Loading rules from file ..."
            log.info("loading rules from %s", ", ".join(bundle.files))
        self._rules_with_content = _with_content(bundle.files)
        sel = select_syscalls(bundle.event_types, cfg["base_syscalls"])
        for w in sel.warnings:
            log.warning("%s", w)
        if sel.unsupported:
            log.info("not captured by the pyfalco driver: %s", " ".join(sorted(sel.unsupported)))
        self.capture = self._open_capture(cfg, sel.syscalls) if plugins.syscall else None
        try:
            self._configure_engine(cfg, bundle)
            self.bundle = bundle
            self.selection = sel
            self.outputs = Outputs.from_config(cfg, stdout_stream=self.stdout_stream).start()
            self.metrics.outputs = self.outputs
            self.metrics.capture_stats = self._capture_stats
            self.metrics.plugin_metrics = plugins.metrics
            self.drops = self._make_drops(cfg)
            self._start_webserver(cfg)
            # last: opening starts the other sources' threads, whose alerts need the outputs
            if self.capture is not None:
                engine.attach(self.capture)
            else:
                engine.open()
        except BaseException:
            self.close()
            raise
        # the rules' compilation and the /proc scan leave their transient structures behind: free
        # them before the first event, so that (on PyPy) the heap the next major collection is
        # measured against is the live one, not the setup's peak (docs/performance.md, PyPy memory)
        gc.collect()
        self._watch_sig = _file_signature(self._watch_paths())
        self._schedule_metrics(cfg)
        self._started = True
        n = rulesload.count_enabled(bundle.ruleset)
        if self.capture is not None:
            log.info("loaded %d rules from %d file(s); engine %s; %d syscalls requested", n, len(bundle.files),
                     cfg["engine"]["kind"], len(sel.syscalls))
        else:
            log.info("loaded %d rules from %d file(s); the syscall source is disabled", n, len(bundle.files))
        if plugins.sources:
            log.info("plugin event sources: %s", ", ".join(f"{s.source} (plugin {s.loaded.name})"
                                                          for s in plugins.sources))
        if self.verbose:
            log.info("%s", sel.describe())

    def _configure_engine(self, cfg: dict, bundle: rulesload.RulesBundle) -> None:
        """The engine's rules (with the agent's renderers) and alert settings from ``cfg``."""
        engine = self.engine
        engine.set_provider("syscall", self.provider)
        engine.iso8601 = cfg["time_format_iso_8601"]
        engine.output_fields = bool(cfg["json_output"] and cfg["json_include_output_fields_property"])
        engine.set_rules(bundle.ruleset, bundle.outputs)
        # kernel-side filter compiled from these rules (pyfalco/kfilter.py; modern_ebpf only)
        from pyfalco import kfilter
        kfilter.configure(self.capture, bundle.ruleset, cfg, log)

    def _make_drops(self, cfg: dict) -> DropManager:
        return DropManager(cfg["syscall_event_drops"], self.emit_internal,
                           lambda msg: self.request_stop(1, msg), ebpf=cfg["engine"]["kind"] == "modern_ebpf")

    def _start_webserver(self, cfg: dict) -> None:
        ws = cfg["webserver"]
        if not ws["enabled"]:
            return
        if cfg["engine"]["kind"] == "replay" and not webserver_asked(self.config, self.overrides):
            # a replay serves no probes: only an explicit request starts the webserver (and so a
            # replay never fails because a running agent holds the port)
            log.debug("replay: webserver not started (ask for it with -o webserver.enabled=true)")
            return
        prom = cfg["metrics"]["enabled"] and ws["prometheus_metrics_enabled"]
        try:
            self.webserver = WebServer(ws, versions, self.metrics.prometheus if prom else None).start()
        except ValueError as exc:
            raise AgentError(f"webserver: {exc}") from None
        except OSError as exc:
            raise AgentError(f"webserver: cannot listen on {ws['listen_address']}:{ws['listen_port']}: "
                             f"{exc.strerror or exc}") from None

    def _schedule_metrics(self, cfg: dict) -> None:
        m = cfg["metrics"]
        self._metrics_interval = parse_duration(m["interval"]) if m["enabled"] else 0.0
        self._next_metrics = time.monotonic() + self._metrics_interval if self._metrics_interval else 0.0

    def _capture_stats(self) -> dict:
        cap = self.capture
        if cap is None or getattr(cap, "closed", False):
            return {}
        try:
            return cap.stats()
        except PyFalcoError:
            return {}

    # ---- alerts ---------------------------------------------------------------------------
    def emit_internal(self, rule: str, priority: int, message: str, fields: dict) -> None:
        """An internal alert (source ``internal``, no tags), like Falco's."""
        now = time.time_ns()
        alert = Alert(rule, priority, now, message, fields, source="internal", host=self.hostname,
                      iso8601=self.cfg["time_format_iso_8601"], internal=True)
        self.metrics.internal_alerts += 1
        if self.outputs is not None:
            self.outputs.emit(alert)

    # ---- the loop -------------------------------------------------------------------------
    def run(self) -> int:
        """Set up (unless done), process until stopped, shut down cleanly; returns the exit code."""
        try:
            if not self._started:
                self.setup()
            self._loop()
        except AgentError as exc:
            log.error("%s", exc)
            self.exit_code = 1
        except PyFalcoError as exc:
            # a damaged capture file (CaptureFileError names the file and the offset) or a capture
            # that fails while running: one line; the events before it were processed and alerted
            msg = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc  # no "[Errno N]"
            log.error("%s (%d events processed before it)", msg, self.metrics.n_evts)
            self.exit_code = 1
        finally:
            self.close()
        if self.exit_reason:
            log.error("%s", self.exit_reason)
        return self.exit_code

    def _loop(self) -> None:
        engine = self.engine
        deadline = time.monotonic() + self.max_seconds if self.max_seconds else None
        next_tick = time.monotonic() + 1.0
        stop = self._stop
        metrics = self.metrics
        while not stop.is_set():
            n = engine.step(0.1)
            if n is None:
                log.info("end of capture file: %d events processed", metrics.n_evts)
                break
            metrics.n_evts += n
            if self._reload or self._reload_thread is not None:
                self._reload_step()
            if self._reopen:
                self._reopen = False
                if self.outputs is not None:
                    self.outputs.reopen()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + 1.0
                self._tick(now)
                if deadline is not None and now >= deadline:
                    break
            elif deadline is not None and now >= deadline:
                break

    def _emit_alert(self, alert: Alert) -> None:
        """The engine's alerts: counted, then queued to the outputs."""
        self.metrics.count_alert(alert.rule, alert.priority, alert.source)
        self.outputs.emit(alert)

    def _tick(self, now: float) -> None:
        cfg = self.cfg
        if self.drops is not None and cfg["engine"]["kind"] != "replay":
            self.drops.check(self._capture_stats())
        if self.outputs is not None:
            dropped = self.outputs.take_drops()
            if dropped:
                self.emit_internal("Falco internal: output drops", 3,
                                   f"Falco internal: output drops. {dropped} alerts dropped in the last "
                                   "second because an output queue was full.",
                                   {"n_drops": str(dropped), "n_drops_total": str(self.outputs.dropped)})
        if self._next_metrics and now >= self._next_metrics:
            self._next_metrics = now + self._metrics_interval
            self.emit_metrics()
        if cfg["watch_config_files"] and self._watch_sig:
            sig = _file_signature(list(self._watch_sig))
            new_paths = _file_signature(self._watch_paths())
            if sig != self._watch_sig or set(new_paths) != set(self._watch_sig):
                log.info("a watched configuration or rules file changed: reloading")
                self._watch_sig = new_paths
                self.request_reload()

    def emit_metrics(self) -> dict:
        m = self.cfg["metrics"]
        snap = self.metrics.snapshot(m["convert_memory_to_mb"], m["rules_counters_enabled"],
                                     m["resource_utilization_enabled"], m["kernel_event_counters_enabled"],
                                     m["plugins_metrics_enabled"])
        if m["output_rule"]:
            self.emit_internal(METRICS_RULE, 6, "Falco metrics snapshot", dict(snap))
        if m["output_file"]:
            alert = Alert(METRICS_RULE, 6, time.time_ns(), "Falco metrics snapshot", snap, source="internal",
                          host=self.hostname, internal=True)
            try:
                with open(m["output_file"], "a") as f:
                    f.write(alert.json() + "\n")
            except OSError as exc:
                log.error("metrics.output_file %s: %s", m["output_file"], exc)
        return snap

    # ---- reload ---------------------------------------------------------------------------
    def reload(self) -> bool:
        """Reload configuration and rules; keep the running ones when the new ones are bad.

        Refused, with one error line and ``metrics.reload_failures`` counted, whatever goes
        wrong: any exception while loading the configuration or the rules (not only the
        expected errors: a bug or a resource limit in the rules library must not end the
        agent), a named rules path that is missing or unreadable, a rules file that had content
        and is now empty (a file being rewritten, or emptied by mistake), zero rules."""
        # the files as they are now: a change during this reload triggers another one, and a
        # refused reload is not retried until a file changes again
        self._watch_sig = _file_signature(self._watch_paths())
        try:
            return self._do_reload()
        except Exception as exc:  # noqa: BLE001 - any failure keeps the running rules
            return self._reload_failed(exc)

    def _reload_failed(self, exc: BaseException) -> bool:
        self.metrics.reload_failures += 1
        text = str(exc).strip().splitlines()
        detail = text[0] if text else ""
        log.error("reload: keeping the running configuration and rules: %s%s", type(exc).__name__,
                  f": {detail}" if detail else "")
        return False

    def _reload_step(self) -> None:
        """On the event loop: start a requested reload's preparation on a thread of its own (the
        rules of a large ruleset take a while to load and compile: the capture must keep being
        read meanwhile), and apply it once prepared. One preparation at a time; a request made
        during one starts another after it (the files may have changed again)."""
        t = self._reload_thread
        if t is None:
            if not self._reload:
                return
            self._reload = False
            self._watch_sig = _file_signature(self._watch_paths())
            self._reload_result = None
            t = threading.Thread(target=self._prepare_off_loop, name="pyfalco-reload", daemon=True)
            self._reload_thread = t
            t.start()
            return
        if t.is_alive():
            return
        self._reload_thread = None
        res, self._reload_result = self._reload_result, None
        if isinstance(res, BaseException):
            self._reload_failed(res)
        elif isinstance(res, dict):
            try:
                self._apply_reload(res)
            except Exception as exc:  # noqa: BLE001 - any failure keeps the running rules
                self._reload_failed(exc)

    def _prepare_off_loop(self) -> None:
        try:
            self._reload_result = self._prepare_reload()
        except Exception as exc:  # noqa: BLE001 - reported on the loop, the running rules kept
            self._reload_result = exc

    def _refuse(self, why: str) -> bool:
        self.metrics.reload_failures += 1
        log.error("reload: keeping the running configuration and rules: %s", why)
        return False

    def _do_reload(self) -> bool:
        prep = self._prepare_reload()
        return prep if isinstance(prep, bool) else self._apply_reload(prep)

    def _prepare_reload(self) -> "dict | bool":
        """The slow part of a reload -- the configuration, the rules (parsed and compiled) and
        new outputs (not started) -- without touching the running agent, so it can run off the
        event loop. Returns what :meth:`_apply_reload` needs, or False when refused (logged)."""
        try:
            path = None if self.resolve_config else self.config.path
            new = load_config(path, self.overrides, defaults_if_missing=path is None)
        except ConfigError as exc:
            return self._refuse(f"configuration error: {exc}")
        if new.path != self.config.path:
            log.info("reload: configuration file %s", new.path)
        cfg = new.data
        if cfg["engine"] != self.cfg["engine"] or cfg["falco_libs"] != self.cfg["falco_libs"]:
            log.warning("reload: engine settings changed; they take effect on restart (the capture is kept)")
            cfg["engine"] = self.cfg["engine"]
            cfg["falco_libs"] = self.cfg["falco_libs"]
        if cfg["plugins"] != self.cfg["plugins"] or cfg["load_plugins"] != self.cfg["load_plugins"]:
            log.warning("reload: plugin settings changed; they take effect on restart (the plugins are kept)")
            cfg["plugins"], cfg["load_plugins"] = self.cfg["plugins"], self.cfg["load_plugins"]
        emptied = sorted(f for f in self._rules_with_content
                         if f in set(rulesload.expand_rules_files_quiet(self.rules_paths(cfg)))
                         and os.path.exists(f) and not _with_content([f]))  # missing: the load says so
        if emptied:
            return self._refuse(f"rules file {emptied[0]} is empty now (it had rules); "
                                "fix it or remove it from the configuration")
        provider = self._provider_for(self.inspector, cfg)
        try:
            bundle = self.load_rules(cfg, provider)
            new_outputs = Outputs.from_config(cfg, stdout_stream=self.stdout_stream) \
                if any(cfg[k] != self.cfg[k] for k in OUTPUT_KEYS) else None
        except (AgentError, ConfigError, ValueError) as exc:
            return self._refuse(str(exc))
        sel = select_syscalls(bundle.event_types, cfg["base_syscalls"])
        return {"new": new, "cfg": cfg, "provider": provider, "bundle": bundle, "new_outputs": new_outputs,
                "sel": sel}

    def _apply_reload(self, prep: dict) -> bool:
        """Switch the running agent to a prepared reload (on the event loop; quick)."""
        new, cfg, provider, bundle = prep["new"], prep["cfg"], prep["provider"], prep["bundle"]
        new_outputs, sel = prep["new_outputs"], prep["sel"]
        if cfg["engine"]["kind"] != "replay" and sel.syscalls != self.selection.syscalls \
                and self.capture is not None:
            try:
                self.capture.select(sorted(sel.syscalls))
            except (PyFalcoError, ValueError) as exc:
                if new_outputs is not None:
                    new_outputs.stop(timeout=0.5)
                return self._refuse(f"selecting syscalls failed: {exc}")
        for w in new.warnings:
            log.warning("%s", w)
        if new_outputs is not None:
            # the old outputs are stopped off the event loop (a slow destination must not stall
            # the capture): their queued alerts get one delivery attempt's time at least, then
            # count as dropped_shutdown; their counters stay in the new set's account
            old_outputs, self.outputs = self.outputs, new_outputs.start()
            self.metrics.outputs = self.outputs
            if old_outputs is not None:
                self.outputs.retire(old_outputs, timeout=retire_timeout(self.cfg))
        ws_changed = cfg["webserver"] != self.cfg["webserver"] or cfg["metrics"] != self.cfg["metrics"]
        self.config, self.cfg = new, cfg
        self.provider, self.bundle, self.selection = provider, bundle, sel
        self._configure_engine(cfg, bundle)
        self._rules_with_content = _with_content(bundle.files)
        self.drops = self._make_drops(cfg)
        self._schedule_metrics(cfg)
        if ws_changed:
            self._restart_webserver_off_loop(cfg)
        self._watch_sig = _file_signature(self._watch_paths())
        self.metrics.reloads += 1
        log.info("reloaded: %d rules, %d syscalls requested", rulesload.count_enabled(bundle.ruleset),
                 len(sel.syscalls))
        return True

    def _restart_webserver_off_loop(self, cfg: dict) -> None:
        """A changed webserver (or metrics) configuration: the running server is stopped and the
        new one started on a thread of its own (a stop waits up to 1 s for its connections'
        threads; the capture must keep being read meanwhile). Restarts run one after another."""
        prev = self._ws_thread
        old, self.webserver = self.webserver, None

        def restart() -> None:
            if prev is not None:
                prev.join()
            if old is not None:
                old.stop()
            with self._ws_lock:
                if self._closing:
                    return
                try:
                    self._start_webserver(cfg)
                except AgentError as exc:
                    log.error("reload: %s", exc)

        t = threading.Thread(target=restart, name="pyfalco-webserver-restart", daemon=True)
        self._ws_thread = t
        t.start()

    # ---- shutdown -------------------------------------------------------------------------
    def close(self, output_timeout: float = 3.5) -> None:
        """Detach the driver, deliver queued alerts (bounded), stop the webserver. Idempotent.
        Bounded in every fault case: the outputs get ``output_timeout`` seconds in all
        (interrupting a blocked destination included), the webserver one more at most, so a
        SIGTERM ends the process within 5 s."""
        cap, self.capture = self.capture, None
        engine, self.engine = self.engine, None
        try:
            if engine is not None:
                engine.close()      # the source threads, the capture, the inspector
            if cap is not None:
                cap.close()         # harmless when the engine closed it
        except Exception as exc:  # noqa: BLE001
            log.error("closing the capture: %s", exc)
        plugins, self.plugins = self.plugins, None
        if plugins is not None:
            plugins.close()     # after the engine stopped the source threads
        outs = self.outputs
        if outs is not None and not getattr(self, "_outputs_stopped", False):
            self._outputs_stopped = True
            outs.stop(timeout=output_timeout)
            # every output's account at exit (a warning when some alerts did not get through)
            for name, c in outs.counters().items():
                lost = c["dropped_full"] or c["failed"] or c["dropped_shutdown"] or c["pending"]
                log.log(logging.WARNING if lost else logging.INFO,
                        "output %s: %d offered: %d sent, %d failed, %d dropped (queue full), %d not delivered at "
                        "shutdown", name, c["offered"], c["sent"], c["failed"], c["dropped_full"],
                        c["dropped_shutdown"] + c["pending"])
        with self._ws_lock:     # a restart after this point starts nothing
            self._closing = True
        t = self._ws_thread
        if t is not None:
            t.join(1.5)         # an old server's stop takes 1 s at most
        with self._ws_lock:
            ws, self.webserver = self.webserver, None
        if ws is not None:
            ws.stop()

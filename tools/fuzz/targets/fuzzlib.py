# SPDX-License-Identifier: Apache-2.0
"""Shared by the Python fuzz targets (tools/fuzz/targets/fuzz_<name>.py).

A target module defines:

* ``setup()``: imports the pyfalco modules it exercises (called inside atheris'
  instrumentation, so only what it imports gets coverage feedback) and builds fixed state;
* ``TestOneInput(data: bytes)``: one input; returns normally when pyfalco handled it, either by
  accepting it or by raising one of the target's documented expected errors (caught inside);
  anything else propagates and is a finding;
* ``EXPECTED``: a text naming those expected errors (for docs and the runner's output);
* optionally ``MAX_LEN`` (libFuzzer's ``-max_len``) and ``CI_RUNS`` (mutations in the CI test).

Running a target file runs it under atheris (``python fuzz_x.py [libFuzzer flags] [corpus dirs]``);
tests/fuzz imports the module and calls ``setup()`` and ``TestOneInput`` without atheris to
replay the checked-in corpus and the regressions.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tools" / "fuzz" / "corpus"
REGRESSIONS = ROOT / "tools" / "fuzz" / "regressions"


def main(setup: Callable[[], None], test_one_input: Callable[[bytes], None], max_len: int = 4096,
         known: tuple = (), include: tuple = ("pyfalco",)) -> None:
    """Runs a target under atheris with coverage feedback from pyfalco's modules. ``known`` are
    open findings (see :func:`known_finding`) that do not stop the run unless
    PYFALCO_FUZZ_STRICT=1: a fix belongs to another part, the fuzzer should keep looking.
    ``include``: the packages whose code gives coverage feedback (pyfalco, plus the parsers it
    hands input to, e.g. yaml or http.server, when they are imported by ``setup``)."""
    import atheris

    plain_imports()
    # PYFALCO_FUZZ_EXCLUDE=mod,mod: modules left uninstrumented (speed experiments; see
    # docs/reliability.md)
    exclude = [m for m in os.environ.get("PYFALCO_FUZZ_EXCLUDE", "").split(",") if m]
    with atheris.instrument_imports(include=list(include), exclude=exclude, enable_loader_override=False):
        setup()
    instrument_generated_decoders(atheris)
    argv = list(sys.argv)
    if not any(a.startswith("-max_len=") for a in argv):
        argv.insert(1, f"-max_len={max_len}")
    # quiet pyfalco's loggers: findings are exceptions, not log lines
    import logging
    logging.disable(logging.CRITICAL)
    atheris.Setup(argv, tolerating_known(test_one_input, known))
    atheris.Fuzz()


#: at most this many run-time-built decoders get atheris' hooks: a fuzzed record may claim any
#: parameter count, and each (type, count) builds a decoder of its own; past the cap they still run,
#: without coverage feedback (atheris' counters are never freed)
MAX_INSTRUMENTED_DECODERS = 4096


def instrument_generated_decoders(atheris) -> int:
    """Gives coverage feedback from the per-type decoders that ``pyfalco.events.param_decoder``
    builds at run time (``exec`` of generated source): instrument_imports only hooks the code of
    imported modules, so without this the fuzzer is blind inside them. Returns how many built
    before this call were instrumented (0 when the target does not use pyfalco.events)."""
    events = sys.modules.get("pyfalco.events")
    if events is None or getattr(events._make_decoder, "_pyfalco_fuzz", False):
        return 0
    make = events._make_decoder
    budget = [MAX_INSTRUMENTED_DECODERS]

    def hooked(dec):
        if budget[0] > 0 and getattr(dec, "__code__", None) is not None:
            budget[0] -= 1
            atheris.instrument_func(dec)
        return dec

    def instrumented_make_decoder(code: int, n: int):
        return hooked(make(code, n))

    instrumented_make_decoder._pyfalco_fuzz = True
    events._make_decoder = instrumented_make_decoder
    cache = events._DECODER_CACHE
    for key in list(cache):
        cache[key] = hooked(cache[key])
    return len(cache)


def known_finding(exc: BaseException, known: tuple) -> str | None:
    """The id of the open finding ``exc`` is, or None. ``known`` holds (id, exception type name,
    message substring, name of the function that raised it)."""
    import traceback
    frames = traceback.extract_tb(exc.__traceback__)
    where = frames[-1].name if frames else ""
    for ident, tname, text, func in known:
        if type(exc).__name__ == tname and text in str(exc) and func == where:
            return ident
    return None


def tolerating_known(fn: Callable[[bytes], None], known: tuple) -> Callable[[bytes], None]:
    if not known or os.environ.get("PYFALCO_FUZZ_STRICT") == "1":
        return fn
    seen: set = set()

    def wrapped(data: bytes) -> None:
        try:
            fn(data)
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a known open finding
            ident = known_finding(exc, known)
            if ident is None:
                raise
            if ident not in seen:
                seen.add(ident)
                print(f"pyfalco-fuzz: known open finding {ident} (not stopping): {type(exc).__name__}: {exc}",
                      file=sys.stderr, flush=True)
    return wrapped


def plain_imports() -> None:
    """Imports pyfalco from this checkout with the ordinary path finder: an editable install's
    redirecting finder (scikit-build-core) wraps the loader, and atheris cannot instrument
    modules loaded through it (no coverage feedback). libpyfalco.so is still found in
    site-packages (pyfalco._native looks along sys.path)."""
    if not (ROOT / "pyfalco" / "__init__.py").is_file():
        return
    sys.meta_path[:] = [f for f in sys.meta_path if "Redirecting" not in type(f).__name__]
    sys.path.insert(0, str(ROOT))


def reset_inspector(insp, initial_state=None):
    """A long-lived Inspector with its state replaced by ``initial_state``'s (empty by default),
    as ``Inspector(live=False, scan=False, initial_state=...)`` would have it: building a new
    one per input costs ~45 ms (StateParser's 64k-entry code tables, which never change), more
    than most inputs take to run."""
    from pyfalco.initial_state import InitialState
    from pyfalco.state.threads import ThreadTable
    from pyfalco.state.users import UserTable
    if initial_state is None:
        initial_state = InitialState()
    insp.initial_state = initial_state
    insp.threads = ThreadTable(insp.threads.max_threads)
    parser = insp.parser
    parser.table = insp.threads
    parser.pending_exit = None
    parser.n_missing_threads = 0
    insp.users = UserTable(initial_state.users, initial_state.groups, live=False)
    insp.containers.containers.clear()
    insp.hostname = initial_state.machine.hostname or ""
    insp.first_ts = insp.last_ts = insp.n_events = insp._next_purge = 0
    insp._environ_cache.clear()
    insp.seed(initial_state)
    return insp


def scratch_dir() -> Path:
    """A per-process scratch directory (in /dev/shm when it exists: inputs become files often)."""
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else Path("/tmp")
    import atexit
    import shutil
    # libFuzzer ends the process without running atexit handlers: clear dead runs' directories
    for old in base.glob("pyfalco-fuzz-*"):
        pid = old.name.rsplit("-", 1)[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            shutil.rmtree(old, True)
    d = base / f"pyfalco-fuzz-{os.getpid()}"
    d.mkdir(exist_ok=True)
    atexit.register(shutil.rmtree, d, True)
    return d


def run_libfuzzer(argv: list, timeout: float, **kwargs):
    """Runs a libFuzzer process (a Python target or a C binary) to completion and returns the
    ``subprocess.CompletedProcess`` (text output captured).

    The process is started through ``/bin/sh``, which forks it: Linux hands a child its parent's
    peak RSS (``ru_maxrss``, kept across exec), and libFuzzer's ``-rss_limit_mb`` reads that
    figure. Started straight from a big process (a pytest run past 2 GB), a target would exit at
    once with "out-of-memory" (exit 71) before running an input. The shell is a small process,
    so its child starts with the shell's peak. Both run in a new session, and a timeout kills the
    whole group."""
    import signal
    import subprocess

    proc = subprocess.Popen(["/bin/sh", "-c", '"$@"; exit $?', "sh", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            errors="replace", start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

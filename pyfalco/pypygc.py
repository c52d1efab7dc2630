# SPDX-License-Identifier: Apache-2.0
"""PyPy's garbage-collector settings for the agent process.

PyPy sizes its nursery (the young-object area every allocation bumps through, so all of it
becomes resident) at half the "cache size" that ``/proc/cpuinfo`` reports. On virtual machines
that figure is often the whole L3 (266240 KB on the 2-vCPU Xeon VM of docs/performance.md), which
gives a 130 MB nursery: half of the live agent's 250-260 MB peak RSS. A 4 MB nursery (the value
PyPy's own GC documentation names as the usual default) and major collections at 1.4x instead
of 1.82x the heap kept keep the same throughput there (docs/performance.md, "PyPy memory").

PyPy reads these settings only when the process starts (its ``gc`` module cannot change them),
so the ``pyfalco`` command re-executes itself once with the missing ones set (same pid, same
arguments): :func:`reexec_with_gc_settings`. A value the user set in the environment is kept.
"""

from __future__ import annotations

import os
import sys
from typing import Mapping, Sequence

__all__ = ["GC_ENV", "missing_settings", "reexec_with_gc_settings"]

# name -> value; documented in docs/performance.md ("PyPy memory")
GC_ENV: dict[str, str] = {
    "PYPY_GC_NURSERY": "4M",
    # major collection when the heap reaches 1.4x (PyPy: 1.82x) what the last one kept: the
    # capture's batch copies are large objects that only a major collection frees
    "PYPY_GC_MAJOR_COLLECT": "1.4",
}
# set in the re-executed process: never re-execute twice (a setting the user removed again, ...)
_DONE = "PYFALCO_PYPY_GC_SET"


def missing_settings(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The GC_ENV settings ``environ`` (default: os.environ) does not set already."""
    env = os.environ if environ is None else environ
    return {k: v for k, v in GC_ENV.items() if k not in env}


def _own_command(argv: Sequence[str]) -> list[str] | None:
    """The command line that starts this program again (None: not known, e.g. embedded)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name.endswith(".__main__"):    # python -m pyfalco
        return [sys.executable, "-m", spec.name[: -len(".__main__")], *argv]
    script = sys.argv[0] if sys.argv else ""
    if script and os.path.isfile(script):                          # the pyfalco console script
        return [sys.executable, script, *argv]
    return None


def reexec_with_gc_settings(argv: Sequence[str]) -> None:
    """On PyPy, when a GC_ENV setting is missing, replace this process by the same command with
    them set (os.execv: the pid, open descriptors and arguments stay). Returns (doing nothing) on
    CPython, when everything is set already, or after one re-execution."""
    if not hasattr(sys, "pypy_version_info") or os.environ.get(_DONE):
        return
    missing = missing_settings()
    if not missing:
        return
    cmd = _own_command(argv)
    if cmd is None or not sys.executable:
        return
    os.environ.update(missing)
    os.environ[_DONE] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, cmd)

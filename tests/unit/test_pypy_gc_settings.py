# SPDX-License-Identifier: Apache-2.0
"""The pyfalco command's PyPy GC settings (pyfalco/pypygc.py): a real PyPy process re-executes
itself once with them (same pid), keeps a value the user set, and CPython never re-executes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyfalco.pypygc import GC_ENV, missing_settings

ROOT = Path(__file__).resolve().parents[2]
PYPY = ROOT / ".venv-pypy" / "bin" / "python"
CPYTHON = ROOT / ".venv" / "bin" / "python"

SCRIPT = """
import gc, os, sys
print("start", os.getpid(), flush=True)
from pyfalco.pypygc import reexec_with_gc_settings
reexec_with_gc_settings(sys.argv[1:])
stats = gc.get_stats() if hasattr(sys, "pypy_version_info") else None
print("run", os.getpid(), os.environ.get("PYPY_GC_NURSERY"), os.environ.get("PYPY_GC_MAJOR_COLLECT"),
      stats.nursery_size if stats else None, " ".join(sys.argv[1:]), flush=True)
"""


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYPY_GC_") and k != "PYFALCO_PYPY_GC_SET"}
    env["PYTHONPATH"] = str(ROOT)
    if "PYFALCO_LIBRARY" not in env:
        import pyfalco._native as nat
        env["PYFALCO_LIBRARY"] = str(nat.lib.path)
    env.update(extra)
    return env


def _run(py: Path, script: Path, env: dict, *args: str) -> list[list[str]]:
    r = subprocess.run([str(py), str(script), *args], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    return [line.split() for line in r.stdout.splitlines()]


def _pypy() -> Path:
    if not PYPY.exists():   # tools/setup creates it wherever Debian's pypy3 installs
        pytest.fail(f"{PYPY} missing: run tools/setup")
    return PYPY


def test_missing_settings_keeps_what_is_set():
    assert missing_settings({}) == GC_ENV
    assert "PYPY_GC_NURSERY" not in missing_settings({"PYPY_GC_NURSERY": "16M"})


def test_pypy_reexecutes_once_with_the_settings(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    lines = _run(_pypy(), script, _env(), "-r", "a b")
    # one start before the exec, one after it (the second start is the re-executed process)
    assert [ln[0] for ln in lines] == ["start", "start", "run"]
    assert lines[0][1] == lines[1][1] == lines[2][1]          # execv keeps the pid
    assert lines[2][2:5] == ["4M", "1.4", "4.0MB"]            # the nursery PyPy really uses
    assert lines[2][5:] == ["-r", "a", "b"]                    # the arguments unchanged


def test_pypy_keeps_a_users_value(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    lines = _run(_pypy(), script, _env(PYPY_GC_NURSERY="8M"))
    assert lines[-1][2:5] == ["8M", "1.4", "8.0MB"]


def test_cpython_never_reexecutes(tmp_path):
    script = tmp_path / "s.py"
    script.write_text(SCRIPT)
    py = Path(sys.executable) if not hasattr(sys, "pypy_version_info") else CPYTHON
    lines = _run(py, script, _env())
    assert [ln[0] for ln in lines] == ["start", "run"]
    assert lines[1][2:5] == ["None", "None", "None"]


def test_pyfalco_module_command_on_pypy_reexecutes_and_runs():
    # python -m pyfalco: the command is rebuilt with -m (the script path would not import)
    r = subprocess.run([str(_pypy()), "-m", "pyfalco", "--page-size"], capture_output=True, text=True,
                       env=_env(), timeout=120, cwd=str(ROOT))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("Your system page size is:") == 1


def test_pypy_module_run_reexecutes_as_module(tmp_path):
    pkg = tmp_path / "gcpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "__main__.py").write_text(SCRIPT)
    env = _env()
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{tmp_path}"
    r = subprocess.run([str(_pypy()), "-m", "gcpkg", "x"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = [line.split() for line in r.stdout.splitlines()]
    assert [ln[0] for ln in lines] == ["start", "start", "run"]
    assert lines[2][2:6] == ["4M", "1.4", "4.0MB", "x"]

# SPDX-License-Identifier: Apache-2.0
"""The Python fuzz targets (tools/fuzz/targets) in CI: each one runs under atheris over its
checked-in seed corpus plus a fixed number of mutations (bounded in count, fixed seed, so the
same inputs every run), and every kept finding (tools/fuzz/regressions/TARGET/) is replayed in
this process. A failure is an uncaught exception other than the target's documented expected
errors (see each target's docstring), a hang past libFuzzer's -timeout, or a crash.

Findings whose fix belongs to another part are kept under regressions/TARGET/open/ and listed
in the target's KNOWN: while they still fail in the known way they are reported as xfail (with
the finding's id); once fixed they pass; failing any other way fails.
Long runs: tools/fuzz/run TARGET SECONDS (docs/reliability.md).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "tools" / "fuzz" / "targets"
CORPUS = ROOT / "tools" / "fuzz" / "corpus"
REGRESSIONS = ROOT / "tools" / "fuzz" / "regressions"
NAMES = sorted(p.stem[len("fuzz_"):] for p in TARGETS.glob("fuzz_*.py"))

if str(TARGETS) not in sys.path:
    sys.path.insert(0, str(TARGETS))

_LOADED: dict = {}


def _target(name: str):
    """The target module, set up once per test session (in this process, without atheris)."""
    mod = _LOADED.get(name)
    if mod is None:
        mod = importlib.import_module(f"fuzz_{name}")
        mod.setup()
        _LOADED[name] = mod
    return mod


@pytest.fixture(scope="module", autouse=True)
def _stop_servers():
    yield
    http = _LOADED.get("http")
    if http is not None:
        http._G["ws"].stop()


def test_every_target_has_a_seed_corpus():
    assert NAMES, "no fuzz targets found"
    for name in NAMES:
        seeds = [p for p in (CORPUS / name).glob("*") if p.is_file()]
        assert seeds, f"tools/fuzz/corpus/{name} is empty"
        assert all(p.stat().st_size <= 65536 for p in seeds), f"{name}: seeds are meant to be small"


@pytest.mark.parametrize("name", NAMES)
def test_seed_corpus_and_mutations(name, tmp_path):
    mod = _target(name)
    runs = getattr(mod, "CI_RUNS", 2000)
    new = tmp_path / "new"         # libFuzzer writes new inputs to the first directory: not the seeds
    new.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYFALCO_FUZZ_STRICT"}
    import fuzzlib
    proc = fuzzlib.run_libfuzzer(
        [sys.executable, TARGETS / f"fuzz_{name}.py", f"-runs={runs}", "-seed=1", "-timeout=60",
         "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/", new, CORPUS / name],
        timeout=900, cwd=tmp_path, env=env)
    out = proc.stdout + proc.stderr
    lines = [ln for ln in out.splitlines() if not ln.startswith("INFO: Instrumenting")]
    assert proc.returncode == 0, f"fuzz_{name} found something (exit {proc.returncode}):\n" + "\n".join(lines[-60:])
    assert f"Done {runs} runs" in out or f"DONE" in out, "\n".join(lines[-20:])
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("timeout-*"))


def _regressions():
    out = []
    for name in NAMES:
        for p in sorted((REGRESSIONS / name).rglob("*")):
            if p.is_file() and not p.name.startswith(".") and p.suffix != ".md":
                out.append(pytest.param(name, p, id=f"{name}/{p.relative_to(REGRESSIONS / name)}"))
    return out


@pytest.mark.parametrize("name,path", _regressions())
def test_regression(name, path):
    mod = _target(name)
    data = path.read_bytes()
    if "open" not in path.relative_to(REGRESSIONS / name).parts:
        mod.TestOneInput(data)
        return
    import fuzzlib
    try:
        mod.TestOneInput(data)
    except Exception as exc:  # noqa: BLE001 - an open finding must fail only in its known way
        ident = fuzzlib.known_finding(exc, getattr(mod, "KNOWN", ()))
        if ident is None:
            raise
        pytest.xfail(f"open finding {ident} (docs/reliability.md): {type(exc).__name__}: {exc}")


GENERATED_DECODERS = r"""
import sys
sys.path.insert(0, sys.argv[1])
import atheris, fuzzlib
fuzzlib.plain_imports()
import pyfalco.events as ev
before = ev.param_decoder(2, 3)                 # built before the hook: instrumented in place
fuzzlib.MAX_INSTRUMENTED_DECODERS = 3
n = fuzzlib.instrument_generated_decoders(atheris)
after = [ev.param_decoder(4, k) for k in (1, 2, 3)]  # the first two use up the cap
hooked = lambda d: "_trace_branch" in d.__code__.co_names or "_trace_cmp" in d.__code__.co_names
print(n, hooked(before), [hooked(d) for d in after], fuzzlib.instrument_generated_decoders(atheris))
"""


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="atheris is CPython-only")
def test_run_time_built_decoders_give_coverage_feedback():
    """pyfalco.events builds a decoder per (type, parameter count) at run time (exec of generated
    source); instrument_imports never sees them, so fuzzlib hooks each as it is built (up to a
    cap), and those built before the hook in place."""
    proc = subprocess.run([sys.executable, "-c", GENERATED_DECODERS, str(TARGETS)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split("\n")[-2] == "1 True [True, True, False] 0", proc.stdout


BIG_PARENT = r"""
import sys
sys.path.insert(0, sys.argv[1])
import fuzzlib
ballast = bytearray(2300 * 2**20)
for i in range(0, len(ballast), 4096):
    ballast[i] = 1                              # touched: this process's peak RSS is > 2.2 GB
# libFuzzer checks the RSS once a second: run for 3 s
argv = [sys.executable, sys.argv[2], "-runs=100000000", "-max_total_time=3", "-seed=1", "-rss_limit_mb=2048",
        "-artifact_prefix=" + sys.argv[4] + "/", sys.argv[4], sys.argv[3]]
r = fuzzlib.run_libfuzzer(argv, timeout=300)
print("exit", r.returncode)
print(r.stderr[-1500:])
"""


@pytest.mark.skipif(sys.implementation.name != "cpython", reason="atheris is CPython-only")
def test_a_target_started_from_a_big_process_runs_under_its_rss_limit(tmp_path):
    """A child inherits its parent's peak RSS on Linux, and libFuzzer's -rss_limit_mb reads it:
    a target started straight from a pytest process past 2 GB exited 71 at once (three targets
    in one CI run). fuzzlib.run_libfuzzer starts it through a small shell."""
    proc = subprocess.run([sys.executable, "-c", BIG_PARENT, str(TARGETS), str(TARGETS / "fuzz_config.py"),
                           str(CORPUS / "config"), str(tmp_path)], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("exit 0\n"), proc.stdout[-3000:]
    assert "Done " in proc.stdout and "out-of-memory" not in proc.stdout, proc.stdout[-3000:]
    assert not list(tmp_path.glob("oom-*"))

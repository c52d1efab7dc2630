# SPDX-License-Identifier: Apache-2.0
"""The libFuzzer targets of libpyfalco (tools/fuzz/c: the .scap reader, the event converters
and the writer, under ASan and UBSan) in CI: each is built, run over its checked-in seed corpus
(tools/fuzz/corpus/TARGET) plus a fixed number of mutations (fixed seed: the same inputs every
run), and every kept finding (tools/fuzz/regressions/TARGET/) is replayed. Any sanitizer report,
failed check of the target's oracles, leak or hang fails. Long runs: tools/fuzz/run TARGET
SECONDS (docs/reliability.md, "Fuzzing: C targets")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "tools" / "fuzz" / "targets") not in sys.path:
    sys.path.insert(0, str(ROOT / "tools" / "fuzz" / "targets"))
import fuzzlib  # noqa: E402 - tools/fuzz/targets: run_libfuzzer
SRC = ROOT / "tools" / "fuzz" / "c"
NAMES = sorted(p.stem[len("fuzz_"):] for p in SRC.glob("fuzz_*.c"))
RUNS = 3000


@pytest.fixture(scope="module")
def built():
    r = subprocess.run([str(SRC / "build.sh")], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    return ROOT / "build" / "fuzz"


def test_targets_exist():
    assert set(NAMES) >= {"scap_reader", "scap_convert"}


@pytest.mark.parametrize("name", NAMES)
def test_seed_corpus_and_mutations(built, name, tmp_path):
    seeds = ROOT / "tools" / "fuzz" / "corpus" / name
    assert [p for p in seeds.iterdir() if p.is_file()], f"tools/fuzz/corpus/{name} is empty"
    assert all(p.stat().st_size < 100_000 for p in seeds.iterdir())
    new = tmp_path / "new"   # new inputs go here, never into the checked-in seeds
    new.mkdir()
    # kept findings (tools/fuzz/regressions/<name>/) are replayed first, with the seeds
    reg = ROOT / "tools" / "fuzz" / "regressions" / name
    kept = [str(reg)] if reg.is_dir() else []
    r = fuzzlib.run_libfuzzer([built / f"fuzz_{name}", f"-runs={RUNS}", "-seed=1", "-max_len=4096", "-timeout=60",
                               "-rss_limit_mb=2048", f"-artifact_prefix={tmp_path}/", new, seeds, *kept],
                              timeout=900, cwd=tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode == 0, f"fuzz_{name} found something:\n{out[-6000:]}"
    assert f"Done {RUNS} runs" in out, out[-2000:]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*"))

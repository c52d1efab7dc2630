# SPDX-License-Identifier: Apache-2.0
"""The C <-> Python contract of libpyfalco: every header function has its ctypes signature and
back, the record layout agrees between driver/abi/pyfalco_abi.h and pyfalco/record.py (and the
compiler refuses a header whose layout moved), and the driver versions are reported for real."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyfalco
from pyfalco import _native, record
from pyfalco.agent import versions

REPO = Path(__file__).resolve().parents[2]
ABI = REPO / "driver" / "abi"
HEADER = REPO / "libpyfalco" / "include" / "pyfalco" / "pyfalco.h"


def _defines(path: Path) -> dict[str, int]:
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^#define (PYFALCO_\w+) (\d+)\b", path.read_text(), flags=re.M)}


def _version(defs: dict[str, int], kind: str) -> str:
    return ".".join(str(defs[f"PYFALCO_{kind}_VERSION_{k}"]) for k in ("MAJOR", "MINOR", "PATCH"))


def test_every_c_function_has_a_signature_and_back():
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    declared = set(re.findall(r"\b(pyfalco_\w+)\s*\(", text))
    assert declared == set(_native.SIGNATURES)


def test_the_record_layout_is_the_same_in_c_and_python():
    defs = _defines(ABI / "pyfalco_abi.h")
    assert record.HDR_SIZE == defs["PYFALCO_EVT_HDR_SIZE"] == 26
    assert record.HDR_LEN_OFFSET == 16
    assert record.BATCH_ENTRY_SIZE == _native.BATCH_ENTRY_SIZE == 8


@pytest.mark.parametrize("edit, message", [
    (("#define PYFALCO_EVT_HDR_SIZE 26", "#define PYFALCO_EVT_HDR_SIZE 24"), "the event header is 26 bytes"),
    (("} __attribute__((packed));", "};"), "the event header is 26 bytes"),
    (("\tpf_u32 len;     /* whole record", "\tpf_u16 len;     /* whole record"), "type at offset 20"),
])
def test_the_compiler_refuses_a_moved_layout(tmp_path, edit, message):
    cc = shutil.which("cc")
    assert cc, "no C compiler: run tools/setup"
    for h in ("pyfalco_abi.h", "pyfalco_kmod.h"):
        shutil.copy(ABI / h, tmp_path / h)
    src = tmp_path / "t.c"
    src.write_text('#include "pyfalco_kmod.h"\nint main(void) { return 0; }\n')
    ok = subprocess.run([cc, "-std=gnu11", "-c", "-o", os.devnull, str(src)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    text = (tmp_path / "pyfalco_abi.h").read_text()
    assert edit[0] in text
    (tmp_path / "pyfalco_abi.h").write_text(text.replace(edit[0], edit[1]))
    bad = subprocess.run([cc, "-std=gnu11", "-c", "-o", os.devnull, str(src)], capture_output=True, text=True)
    assert bad.returncode != 0 and message in bad.stderr, bad.stderr


def test_driver_versions_are_the_headers():
    defs = _defines(ABI / "pyfalco_abi.h")
    api, schema = _version(defs, "API"), _version(defs, "SCHEMA")
    assert _native.lib.pyfalco_driver_api_version().decode() == api
    assert _native.lib.pyfalco_driver_schema_version().decode() == schema
    assert _native.lib.pyfalco_driver_versions().decode() == f"api={api} schema={schema}"
    v = versions()
    assert (v["driver_api_version"], v["driver_schema_version"]) == (api, schema)
    assert v["libs_version"] == _native.lib.pyfalco_version().decode() == pyfalco.__version__


def test_pyfalco_version_shows_the_driver_versions():
    defs = _defines(ABI / "pyfalco_abi.h")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "--version"], capture_output=True, text=True,
                         env=env, cwd=str(REPO), timeout=60)
    assert out.returncode == 0, out.stderr
    assert re.search(rf"API version:\s+{re.escape(_version(defs, 'API'))}$", out.stdout, flags=re.M), out.stdout
    assert re.search(rf"Schema version:\s+{re.escape(_version(defs, 'SCHEMA'))}$", out.stdout, flags=re.M)
    js = subprocess.run([sys.executable, "-m", "pyfalco.cli.main", "--version", "-o", "json_output=true"],
                        capture_output=True, text=True, env=env, cwd=str(REPO), timeout=60)
    assert js.returncode == 0, js.stderr
    assert json.loads(js.stdout)["driver_api_version"] == _version(defs, "API")

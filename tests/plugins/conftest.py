# SPDX-License-Identifier: Apache-2.0
"""Builds the test C plugins (tests/plugins/c/) with the system compiler, once per session."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

C_DIR = Path(__file__).parent / "c"

#: variant name -> extra compiler flags (see the header comment of cdummy.c)
VARIANTS = {"cdummy": [], "bad_api": ["-DBAD_API"], "newer_minor": ["-DNEWER_MINOR"],
            "no_last_error": ["-DNO_LAST_ERROR"], "bad_fields": ["-DBAD_FIELDS"], "cdummyx": ["-DEXTRACT_ONLY"],
            "cdsys": ["-DSYSCALL_EXTRACT"], "cdschema": ["-DWITH_SCHEMA"]}


@pytest.fixture(scope="session")
def c_plugins(tmp_path_factory) -> dict[str, str]:
    """Path of every built variant of the test plugin, by name (lib<name>.so)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler (build-essential, installed by tools/setup) is needed to build test plugins"
    out = tmp_path_factory.mktemp("cplugins")
    paths = {}
    for name, flags in VARIANTS.items():
        so = out / f"lib{name}.so"
        done = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-Wall", "-Wextra", "-Werror", *flags, "-o", str(so),
                               str(C_DIR / "cdummy.c")], capture_output=True, text=True)
        assert done.returncode == 0, f"building {so.name} failed:\n{done.stderr}"
        paths[name] = str(so)
    return paths

# SPDX-License-Identifier: Apache-2.0
"""Loading libpyfalco: a missing library, symbol or ABI version is an ImportError naming it."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_missing_library_is_an_import_error_naming_it(tmp_path):
    env = {"PYFALCO_LIBRARY": str(tmp_path / "nope.so"), "PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", "import pyfalco._native"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "AbiMismatchError" in r.stderr and "nope.so" in r.stderr
    from pyfalco.errors import AbiMismatchError
    assert issubclass(AbiMismatchError, ImportError)


def test_a_library_missing_a_symbol_is_refused(tmp_path):
    lib = tmp_path / "libpartial.so"
    src = tmp_path / "partial.c"
    src.write_text("unsigned pyfalco_abi_version(void) { return 1u << 16; }\n")
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    env = {"PYFALCO_LIBRARY": str(lib), "PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", "import pyfalco._native"], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "missing symbol pyfalco_version" in r.stderr


def test_a_library_of_another_abi_major_is_refused(tmp_path):
    # every symbol present (stubs), but the ABI major is 2
    import re
    names = re.findall(r'^    "(pyfalco_\w+)":', open(os.path.join(ROOT, "pyfalco", "_native.py")).read(), re.M)
    src = tmp_path / "other.c"
    src.write_text("unsigned pyfalco_abi_version(void) { return 2u << 16; }\n" +
                   "".join(f"void {n}(void) {{}}\n" for n in names if n != "pyfalco_abi_version"))
    lib = tmp_path / "libother.so"
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    env = {"PYFALCO_LIBRARY": str(lib), "PATH": "/usr/bin:/bin", "PYTHONPATH": ROOT}
    r = subprocess.run([sys.executable, "-c", "import pyfalco._native"], env=env, capture_output=True, text=True)
    assert r.returncode != 0
    assert "ABI version 2.0, this pyfalco needs 1.x" in r.stderr

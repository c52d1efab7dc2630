# SPDX-License-Identifier: Apache-2.0
"""Capture-file tests: need libpyfalco (PYFALCO_LIBRARY, or build-replay/ of the checkout), no root."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
if "PYFALCO_LIBRARY" not in os.environ:
    for cand in (ROOT / "build-replay" / "libpyfalco" / "libpyfalco.so", ROOT / "build" / "libpyfalco" / "libpyfalco.so"):
        if cand.is_file():
            os.environ["PYFALCO_LIBRARY"] = str(cand)
            break


def pytest_collection_modifyitems(config, items):
    try:
        import pyfalco.scap._native_scap  # noqa: F401
    except ImportError as err:
        skip = pytest.mark.skip(reason=f"libpyfalco not available: {err}")
        for item in items:
            if "tests/captures" in str(item.fspath):
                item.add_marker(skip)

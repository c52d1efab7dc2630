# SPDX-License-Identifier: Apache-2.0
"""Every ``python`` block of docs/api.md runs as written (live eBPF blocks too: root), in a folder
holding ``trace.scap`` (libs_curl_google.scap of the shared captures)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "api.md"
TRACE = REPO.parent / "shared" / "captures" / "libs_curl_google.scap"


def _blocks() -> list[tuple[str, str]]:
    text = DOC.read_text()
    out = []
    heading = "top"
    for m in re.finditer(r"^(#+ [^\n]*)$|^```python\n(.*?)^```$", text, re.M | re.S):
        if m.group(1):
            heading = m.group(1).lstrip("# ").strip()
        else:
            out.append((heading, m.group(2)))
    return out


BLOCKS = _blocks()


def test_the_page_has_examples():
    assert len(BLOCKS) >= 7


@pytest.mark.parametrize("heading,code", BLOCKS, ids=[f"{i}-{h}" for i, (h, _c) in enumerate(BLOCKS)])
def test_example_runs(heading, code, tmp_path, monkeypatch, capsys):
    shutil.copy(TRACE, tmp_path / "trace.scap")
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"{DOC.name}:{heading}", "exec"), {"__name__": "__api_doc__"})
    assert os.getcwd() == str(tmp_path)

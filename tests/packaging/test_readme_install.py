# SPDX-License-Identifier: Apache-2.0
"""The README's install instructions work as written: the "### Wheel" block (run by the
``readme_wheel`` fixture in a clean copy of the checkout, HOME in a temporary folder) builds the
wheel, installs it and ends with a dry run that loads the packaged configuration and rules."""

from __future__ import annotations

import re

import pytest

from packagingtools import REPO, readme_block

pytestmark = pytest.mark.slow


def test_quick_start_commands_stay():
    text = (REPO / "README.md").read_text()
    assert "tools/run     # set everything up, then run the agent with the default rules (live eBPF)" in text
    assert "tools/test    # set everything up, then run the whole test suite" in text


def test_install_section_has_the_wheel_block():
    text = (REPO / "README.md").read_text()
    assert text.index("\n## Install\n") < text.index("\n### Wheel\n")
    block = readme_block("### Wheel")
    assert "pip wheel --no-deps" in block and "pip install dist/pyfalco-*.whl" in block


def test_wheel_block_runs_as_written(readme_wheel):
    r = readme_wheel.result
    venv = readme_wheel.home / "pyfalco"
    assert (venv / "bin" / "pyfalco").exists()
    # the dry run at the end of the block: the packaged configuration of that venv, its rules
    # (the default syscall rules only, as Falco's falco.yaml: no "rules loaded with N warning(s)")
    m = re.search(r"dry run: configuration (\S+) and (\d+) rules from 1 file\(s\) loaded", r.stderr)
    assert m, r.stderr
    assert m.group(1).startswith(str(venv)) and m.group(1).endswith("site-packages/pyfalco/data/pyfalco.yaml")
    assert int(m.group(2)) > 0
    assert "Traceback" not in r.stderr
    assert "warning(s)" not in r.stderr, r.stderr

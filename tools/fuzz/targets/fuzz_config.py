#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Fuzz target: the agent's configuration loader (pyfalco/agent/config.py): a YAML file plus
``-o key=value`` overrides through ``load_config`` (read, config_files merge, overrides, ${VAR}
expansion, schema validation, semantic checks).

Input: the YAML text, then NUL-separated overrides (``text\\0key=value\\0key2=value``). The file
is written to a scratch directory (/dev/shm), which is also where relative config_files resolve.
Expected errors: pyfalco.errors.ConfigError, whose message (like every warning) must be one line.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fuzzlib  # noqa: E402

EXPECTED = "pyfalco.errors.ConfigError"
MAX_LEN = 4096
CI_RUNS = 2000

_G: dict = {}


def setup() -> None:
    import pyfalco.agent.config
    from pyfalco.errors import ConfigError
    _G["load_config"] = pyfalco.agent.config.load_config
    _G["expected"] = (ConfigError,)
    d = fuzzlib.scratch_dir()
    _G["path"] = str(d / "pyfalco.yaml")
    # a file config_files may name (relative to the main file)
    (d / "extra.yaml").write_text("json_output: true\noutputs_queue: {capacity: 10}\n")


def TestOneInput(data: bytes) -> None:  # noqa: N802 - atheris' name
    text, *overrides = data.split(b"\0")
    with open(_G["path"], "wb") as f:
        f.write(text)
    ovs = [o.decode("utf-8", "surrogateescape") for o in overrides]   # as argv reaches -o
    try:
        cfg = _G["load_config"](_G["path"], ovs)
    except _G["expected"] as err:
        _one_line("error", str(err))
        return
    for w in cfg.warnings:
        _one_line("warning", w)
    cfg.get("json_output")


def _one_line(what: str, msg: str) -> None:
    """The agent prints errors and warnings as lines: a key or value from the input must not
    break one (newline, CR, NEL, U+2028/2029... all split str.splitlines())."""
    if len(msg.splitlines()) > 1:
        raise AssertionError(f"a configuration {what} of more than one line: {msg!r}")


if __name__ == "__main__":
    # the YAML text is parsed by libyaml (C, no coverage feedback; pyfalco.agent.config uses
    # CSafeLoader like the rule loader): libFuzzer gets YAML's tokens and the configuration's
    # keys as a dictionary instead. yaml's constructor and resolver (Python) still give feedback.
    if not any(a.startswith("-dict=") for a in sys.argv):
        sys.argv.insert(1, "-dict=" + os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.dict"))
    fuzzlib.main(setup, TestOneInput, MAX_LEN, (), include=("pyfalco", "yaml"))

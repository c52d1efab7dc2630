# SPDX-License-Identifier: Apache-2.0
"""Test helpers for projects that assert detections: start a capture with given rules, run code,
check which rules fired (live eBPF or a replayed capture file). ``pyfalco.testing.plugin`` is the
pytest plugin (fixtures ``pyfalco_session``, ``falco``, ``pyfalco_replay``); docs/testing-fixtures.md
shows both."""

from .session import Alert, DetectionError, DetectionSession, ReplayResult, Watch, default_rules_path, replay

__all__ = ["Alert", "DetectionError", "DetectionSession", "ReplayResult", "Watch", "default_rules_path", "replay"]

# SPDX-License-Identifier: Apache-2.0
"""Test helpers for projects that assert detections: start a capture with given rules, run code,
check which rules fired (live eBPF or a replayed capture file). ``pyfalco.testing.plugin`` is the
pytest plugin (fixtures ``pyfalco_session``, ``falco``, ``pyfalco_replay``, ``falco_k8saudit``);
docs/testing-fixtures.md shows both."""

from .session import (Alert, DetectionError, DetectionSession, ReplayResult, Watch, default_k8s_rules_path,
                      default_rules_path, k8saudit_plugins, replay)

__all__ = ["Alert", "DetectionError", "DetectionSession", "ReplayResult", "Watch", "default_k8s_rules_path",
           "default_rules_path", "k8saudit_plugins", "replay"]

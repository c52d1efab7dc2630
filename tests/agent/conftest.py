# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures of the agent tests (the helpers live in agenttools.py)."""

from agenttools import etc_rules, pki, receiver, syslog_listener  # noqa: F401

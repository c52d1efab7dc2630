# SPDX-License-Identifier: Apache-2.0
"""pytest fixtures of the agent tests (the helpers live in agenttools.py)."""

from agenttools import etc_rules, pki, process_receiver, receiver, syslog_listener  # noqa: F401

# SPDX-License-Identifier: Apache-2.0
"""The pyfalco agent: what ``pyfalco`` (the command) runs, usable from Python too.

    from pyfalco.agent import Agent, load_config
    code = Agent(load_config("deploy/pyfalco.yaml", ["engine.kind=replay", ...])).run()

config.py (falco.yaml keys, merging, -o) -> rulesload.py (rules and alert rendering) ->
syscalls.py (driver selection) -> core.py (event loop, drops.py, metrics.py, webserver.py,
reload, signals) -> pyfalco.outputs (delivery).
"""

from .config import DEFAULTS, Config, load_config, parse_override
from .core import Agent, AgentError, make_inspector, versions
from .syscalls import IGNORED_SET, STATE_SET, Selection, select_syscalls

__all__ = ["Agent", "AgentError", "Config", "load_config", "parse_override", "DEFAULTS", "versions",
           "make_inspector", "select_syscalls", "Selection", "STATE_SET", "IGNORED_SET"]

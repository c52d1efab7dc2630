# SPDX-License-Identifier: Apache-2.0
"""Falco's rule language: load rules files, compile conditions to Python, match events.

    result = load_rules("falco_rules.yaml", provider=my_provider)
    if not result.ok:
        print(result.as_text(verbose=True))
    for rule in result.ruleset.match(evt):
        print(format_alert(rule, evt, time_ns))

Pipeline: loader.py (YAML with positions) -> collector.py (define/append/override) ->
resolver.py (lists, macros) -> lexer.py/parser.py -> nodes.py -> checker.py -> evttypes.py ->
compiler.py (generated Python) | interpreter.py (reference) -> ruleset.py (type index).
"""

from pyfalco.rules.checker import CheckError, event_type_names
from pyfalco.rules.compiler import CompiledCondition, compile_condition
from pyfalco.rules.errors import ConditionSyntaxError, RuleError, RulesLoadError
from pyfalco.rules.filter import Filter, compile_filter
from pyfalco.rules.interpreter import Interpreter, evaluate
from pyfalco.rules.loader import DEFAULT_PLUGINS, ENGINE_VERSION, load_rules
from pyfalco.rules.nodes import to_text
from pyfalco.rules.output import (OutputFormat, alert_json, compile_output, format_alert, format_output,
                                  format_time)
from pyfalco.rules.parser import parse
from pyfalco.rules.provider import DictProvider, FieldProvider, field_key
from pyfalco.rules.result import LoadMessage, LoadResult, Location
from pyfalco.rules.ruleset import Priority, Rule, Ruleset

RuleEngine = Ruleset

__all__ = [
    "load_rules", "LoadResult", "LoadMessage", "Location", "Ruleset", "RuleEngine", "Rule", "Priority",
    "FieldProvider", "DictProvider", "field_key", "parse", "to_text", "compile_condition",
    "CompiledCondition", "compile_filter", "Filter", "Interpreter", "evaluate", "format_output", "format_alert", "alert_json",
    "format_time", "compile_output", "OutputFormat", "RuleError", "ConditionSyntaxError",
    "RulesLoadError", "CheckError", "ENGINE_VERSION", "DEFAULT_PLUGINS", "event_type_names",
]

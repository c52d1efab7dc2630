# SPDX-License-Identifier: Apache-2.0
"""Field extractors over the state engine: ``make_accessor(name, arg)`` -> callable(InspectedEvent) -> value.

Values are typed as the rule engine expects (provider.py of pyfalco.rules): int for numbers,
bool, str, ``ipaddress`` objects for addresses and networks, tuples for "any ancestor" forms; None
is Falco's missing value (``<NA>``). An extractor never raises: a value that cannot be computed
is None.

The field classes live in their own modules, as libsinsp splits its filterchecks: evt.py (evt.*,
fs.path.*), proc.py (proc.*, thread.*), user.py (user.*, group.*), fd.py (fd.*), container.py
(container.*, k8s.*); this module is their registry. The hot fields (evt.type, proc.name, fd.name,
container.id) are plain functions that read one attribute and are handed out as they are; values
that cost a join or a walk are cached on the thread (until exec) or on the event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import container as _container
from . import evt as _evt
from . import fd as _fd
from . import proc as _proc
from . import user as _user
from .common import NotExtractable, safe
from .evt import evt_type, make_evt_arg, make_evt_rawarg, render_param
from .proc import LOGIN_SHELLS

__all__ = ["make_accessor", "EXTRACTORS", "INDEXED", "KEYED", "NotExtractable", "evt_type", "render_param",
           "LOGIN_SHELLS", "MODULES"]

#: the field-class modules, in the order their fields are listed
MODULES = (_evt, _proc, _user, _fd, _container)

#: field name -> extractor, for fields without an argument
EXTRACTORS: dict[str, Callable] = {}
#: fields whose argument is an ancestor index (none = any ancestor): name -> thread getter
INDEXED: dict[str, Callable] = {}
#: fields that take a key or free-form argument: name -> factory(arg)
KEYED: dict[str, Callable[[Any], Callable]] = {}
for _m in MODULES:
    for _table, _part in ((EXTRACTORS, _m.EXTRACTORS), (INDEXED, _m.INDEXED), (KEYED, _m.KEYED)):
        _clash = _table.keys() & _part.keys()
        if _clash:
            raise RuntimeError(f"fields defined twice: {sorted(_clash)}")
        _table.update(_part)

# hot-path extractors are returned as they are; every other one is wrapped in safe()
_UNWRAPPED = frozenset().union(*(m.UNWRAPPED for m in MODULES))
_ancestor_field = _proc._ancestor_field
_KEY_OPTIONAL = frozenset(("proc.env", "proc.aenv", "fd.types"))


def make_accessor(name: str, arg: str | None = None) -> Callable[[Any], Any]:
    """The extractor of one field use; raises NotExtractable for unknown names."""
    if name.startswith("evt.arg.") or name.startswith("evt.rawarg."):
        base, _, dot = name.partition(".arg.") if name.startswith("evt.arg.") else name.partition(".rawarg.")
        fn = (make_evt_arg if name.startswith("evt.arg.") else make_evt_rawarg)(dot)
        return safe(fn)
    if name in INDEXED:
        if arg is not None and not arg.isdigit():
            raise NotExtractable(f"{name}[{arg}]")
        return safe(_ancestor_field(INDEXED[name], arg, name))
    if name in KEYED:
        if arg is None and name not in _KEY_OPTIONAL:
            raise NotExtractable(name)
        return safe(KEYED[name](arg))
    fn = EXTRACTORS.get(name)
    if fn is None:
        raise NotExtractable(name)
    return fn if fn in _UNWRAPPED else safe(fn)

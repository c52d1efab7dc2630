# SPDX-License-Identifier: Apache-2.0
"""Field layer: names and types of the filter fields (catalog.py) and their extraction over the
state engine (one module per field class: evt.py, proc.py, user.py, fd.py,
container.py; extract.py is their registry; provider.py: StateProvider); ``list_fields(fmt)`` for ``--list``."""

from pyfalco.fields.catalog import FIELDS, FieldInfo, lookup

__all__ = ["FIELDS", "FieldInfo", "lookup", "list_fields", "StateProvider"]


def __getattr__(name: str):
    if name == "list_fields":
        from pyfalco.fields.listing import list_fields
        return list_fields
    if name == "StateProvider":
        from pyfalco.fields.provider import StateProvider
        return StateProvider
    raise AttributeError(f"module 'pyfalco.fields' has no attribute {name!r}")

# SPDX-License-Identifier: Apache-2.0
"""Field layer: names and types of the filter fields (catalog.py); extractors live beside it."""

from pyfalco.fields.catalog import FIELDS, FieldInfo, lookup

__all__ = ["FIELDS", "FieldInfo", "lookup"]

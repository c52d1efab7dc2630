# SPDX-License-Identifier: Apache-2.0
"""pyfalco's plugin framework: Falco's plugin semantics for Python plugins and Falco's C plugins.

* :mod:`pyfalco.plugins.api`: the API a plugin implements (:class:`Plugin`, :class:`PluginInstance`,
  :class:`PluginEvent`, :class:`FieldSpec`);
* :mod:`pyfalco.plugins.registry`: finding and loading plugins (dotted path, entry point, ``.so``);
* :mod:`pyfalco.plugins.cabi`: Falco's C plugin ABI through ctypes;
* :mod:`pyfalco.plugins.provider`: the field provider of a plugin source;
* :mod:`pyfalco.plugins.source`: the event source that runs a plugin capture.
"""

from pyfalco.plugins.api import (FIELD_TYPES, FRAMEWORK_API_VERSION, FieldSpec, Plugin, PluginError,
                                 PluginEvent, PluginInstance)

__all__ = ["Plugin", "PluginInstance", "PluginEvent", "FieldSpec", "PluginError", "FIELD_TYPES",
           "FRAMEWORK_API_VERSION"]

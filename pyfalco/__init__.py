# SPDX-License-Identifier: Apache-2.0
"""pyfalco: cloud-native runtime security (Falco's job) as an embeddable Python library."""

__version__ = "0.1.0"

# SPDX-License-Identifier: Apache-2.0
"""The ``pyfalco`` command line (Falco 0.44's options); see main.py."""

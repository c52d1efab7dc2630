# SPDX-License-Identifier: Apache-2.0
"""``python -m pyfalco`` runs the agent's command line, as the ``pyfalco`` script does."""

import sys

from pyfalco.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

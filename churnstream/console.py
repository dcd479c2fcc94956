"""The rich console every ``churnstream`` command prints to: the terminal's width, or 140 columns into a pipe.

>>> console.width if not console.is_terminal else 140
140
"""

from __future__ import annotations

import sys

from rich.console import Console

console = Console(width=None if sys.stdout.isatty() else 140)

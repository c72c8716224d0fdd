"""The one exception type that the CLI turns into a one-line message instead of a traceback."""

from __future__ import annotations


class LridError(Exception):
    """A problem with the user's input or files: its message names the problem and the fix."""

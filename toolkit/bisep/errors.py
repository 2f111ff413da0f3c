"""The base class of the errors whose message is meant for the user.

A bad config, data file, checkpoint, audio file, plugin or command line raises an error
whose message names the input and the fix. Each module keeps its own class
(``ConfigError``, ``DataError``, ...) and the built-in base it had (``ValueError``,
``FileNotFoundError``, ...), so every existing ``except`` still matches; they also derive
from :class:`UserError`, so the command line can print any of them as a message, without a
traceback (``bisep.cli.main``).

This module imports nothing, so every layer may use it.
"""


class UserError(Exception):
    """Something the user gave cannot be used; ``str(error)`` says what and how to fix it."""

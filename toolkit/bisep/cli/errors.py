"""The command line's own error and the exceptions it reports without a traceback.

Subcommands import these at module level; :mod:`bisep.cli.main` prints every
:class:`bisep.errors.UserError` as ``bisep <cmd>: error: ...`` with exit code 2.
"""
from __future__ import annotations

from bisep.errors import UserError


class CliError(UserError):
    """An error in the command line: printed as ``bisep <cmd>: error: ...`` with exit code 2,
    as every :class:`bisep.errors.UserError` is."""


def user_errors() -> tuple[type[BaseException], ...]:
    """Exception types whose message is meant for the user (no traceback): bisep's user
    errors, and a missing file named by a dependency (a query encoder's weights)."""
    return (UserError, FileNotFoundError)

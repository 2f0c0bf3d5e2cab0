"""Errors that reach the user as one line, never as a traceback."""

from __future__ import annotations


class PipectlError(Exception):
    """A problem the user can act on; its message is shown as-is (after redaction)."""

    exit_code = 1


class UsageError(PipectlError):
    """Bad input: a malformed flag, name, duration or config value. Nothing was touched."""

    exit_code = 2


class ConnectorError(PipectlError):
    """An outside system did not give an answer we can use."""


class Unreachable(ConnectorError):
    """The system could not be reached or did not answer in time (an outage, not a failed check)."""


class Unauthorized(ConnectorError):
    """The system answered but refused our credentials or permissions."""


class NotFound(ConnectorError):
    """The system answered and the named thing does not exist."""

"""The CLI's errors: answers shown to the user instead of a traceback."""

from __future__ import annotations


class PlatformError(Exception):
    """An answer the CLI shows to the user instead of a traceback."""


class PlatformNotRunning(PlatformError):
    pass


class NotSignedIn(PlatformError):
    """The API refused the credential (or there was none): the message says to sign in."""

"""Errors that are the user's to fix: the CLI prints them as one line, without a traceback."""


class UserError(Exception):
    """A mistake in the user's input (a flag, a file, a run folder)."""


class DataError(UserError, ValueError):
    """A data file or data spec that cannot be used; the message names the file and the problem."""

"""Errors that mean "the input was wrong", as opposed to a bug.

The CLI turns an :class:`AnyframeInputError` into one line on stderr and exit code 2; every other
exception is a bug and keeps its traceback.
"""


class AnyframeInputError(ValueError):
    """A user-facing input problem: missing or corrupt file, bad size or index, malformed config."""

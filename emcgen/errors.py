"""Errors that reach the user.

Anything wrong with the user's input (model, file, option, dataset) raises EmcError with one line that
names the layer, file or value and says what is supported. The CLI prints that line to stderr and exits
with code 2; a Python traceback is shown only with --debug. Bugs in emcgen itself stay ordinary exceptions.
"""


class EmcError(Exception):
    """A problem with the user's input; the message is a complete one-line explanation."""

    exit_code = 2


class UnsupportedError(EmcError):
    """The model uses a layer, option or shape that the frontend or target cannot handle."""


class FormatError(EmcError):
    """A file is corrupt, truncated, of the wrong version or not of the expected kind."""


class DoesNotFitError(EmcError):
    """The model does not fit the target's memory; the message names the layer and the bytes."""

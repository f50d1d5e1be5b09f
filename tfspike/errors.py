"""User-facing errors: raised for bad input, reported by ``main.py`` as one line with exit 2."""


class UserError(Exception):
    """Bad flags, impossible values, missing data or weight files that do not fit a model.

    ``main.py`` prints ``error: <message>`` on one line and exits with status 2 (no traceback).
    Library callers get an ordinary exception that says what to fix.
    """

    exit_code = 2


class MissingDataError(UserError, FileNotFoundError):
    """A dataset file is absent locally and could not be downloaded."""


class WeightMismatchError(UserError, ValueError):
    """A weight file does not fit the model (names the layer and both shapes)."""

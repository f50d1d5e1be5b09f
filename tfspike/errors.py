"""User-facing errors: raised for bad input, reported by ``main.py`` as one line with exit 2.

One convention everywhere: layers, loaders and the CLI raise :class:`UserError` (or a subclass) for
input a user can fix. It is a :class:`ValueError`, so library callers that catch ``ValueError`` (as Keras
users do for bad layer arguments) keep working, and ``main.py`` needs no conversion between the two.
"""


class UserError(ValueError):
    """Bad flags, impossible values, missing data or weight files that do not fit a model.

    ``main.py`` prints ``error: <message>`` on one line and exits with status 2 (no traceback).
    Library callers get an ordinary ``ValueError`` that says what to fix.
    """

    exit_code = 2


class MissingDataError(UserError, FileNotFoundError):
    """A dataset file is absent locally and could not be downloaded."""


class WeightMismatchError(UserError):
    """A weight file does not fit the model (names the layer and both shapes)."""

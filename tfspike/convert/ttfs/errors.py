"""The converter's two user errors: a model it cannot map, and a mapping whose float64 check failed."""

from tfspike.errors import UserError


class UnsupportedLayersError(UserError):
    """The model contains layers (or a graph shape) the converter cannot map exactly."""


class MappingCheckError(UserError):
    """The mapped model's float64 outputs differ from the original's (spec §5.1 step 9; exit status 1)."""

    exit_code = 1

"""tfspike: a Keras 3 / TensorFlow model zoo of spiking neurons.

Subpackages are imported lazily so that ``import tfspike`` (and ``python main.py --help``) stays fast;
TensorFlow is loaded by the modules that need it.
"""

__version__ = "0.1.0"

from tfspike.errors import MissingDataError, UserError, WeightMismatchError  # noqa: F401

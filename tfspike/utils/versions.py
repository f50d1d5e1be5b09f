"""Library versions recorded with every result, so a number can be traced to the code that made it."""

import platform


def library_versions():
    """``{"tfspike", "python", "numpy", "tensorflow", "keras"}`` version strings (imports TensorFlow)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tfspike

    return {"tfspike": tfspike.__version__, "python": platform.python_version(), "numpy": np.__version__,
            "tensorflow": tf.__version__, "keras": keras.__version__}

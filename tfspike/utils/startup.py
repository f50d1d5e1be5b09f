"""TensorFlow's start-up notices kept out of tfspike's default output.

TensorFlow's C++ runtime writes notices to the process's stderr before its logging is configured
(the oneDNN notice, "Could not find cuda drivers", ``failed call to cuInit`` as an ``E`` line on machines
without a GPU, CPU-feature hints). ``TF_CPP_MIN_LOG_LEVEL`` no longer hides all of them, and a newcomer
reads the ``E`` line as a failure. :func:`import_tensorflow_quietly` imports TensorFlow and Keras and
initialises the devices with file descriptor 2 redirected, then replays every line that is not one of
these notices, so real errors still show.
"""

import os
import re
import sys
import tempfile

STARTUP_NOTICE = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|^[IW]\d{4} "                                            # absl INFO / WARNING lines
    r"|cuInit|cuda drivers|cuda_platform|cudart_stub|cuda_dnn|cuda_blas|cuda_fft"
    r"|cpu_feature_guard|To enable the following instructions|rebuild TensorFlow with the appropriate"
    r"|TF-TRT Warning|oneDNN custom operations")


def import_tensorflow_quietly():
    """Import TensorFlow and Keras, hiding their start-up notices (see the module docstring).

    Does nothing when TensorFlow is already imported. Returns the lines it hid.
    """
    if "tensorflow" in sys.modules:
        return []
    fd = sys.stderr.fileno()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as capture:
        sys.stderr.flush()
        os.dup2(capture.fileno(), fd)
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # device initialisation prints the CUDA notices
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
        capture.seek(0)
        lines = capture.read().decode(errors="replace").splitlines()
    hidden = [line for line in lines if STARTUP_NOTICE.search(line)]
    for line in lines:
        if not STARTUP_NOTICE.search(line):
            print(line, file=sys.stderr)
    return hidden

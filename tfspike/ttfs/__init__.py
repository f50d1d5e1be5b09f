"""Time-to-first-spike (TTFS) networks: the B1 model of Stanojevic et al. (2024).

Layers pass relative spike times r = t_max − t, which equal the ReLU activations, so a TTFS network and
its ReLU twin with the same weights give the same logits and the same gradients.
"""

from tfspike.ttfs.base import TTFSSpikingLayer  # noqa: F401
from tfspike.ttfs.conv import TTFSConv2D  # noqa: F401
from tfspike.ttfs.dense import TTFSDense  # noqa: F401
from tfspike.ttfs.encoding import TTFSInput  # noqa: F401
from tfspike.ttfs.metrics import evaluate_ttfs  # noqa: F401
from tfspike.ttfs.model import TTFSModel  # noqa: F401
from tfspike.ttfs.pool import TTFSMaxPool2D  # noqa: F401

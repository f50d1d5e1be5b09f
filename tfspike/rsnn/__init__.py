"""Resonate-and-fire recurrent SNNs (Higuchi et al., ICML 2024): BRF, RF and ALIF cells, the LI
readout, the benchmark RSNN with its presets, and the reference training recipes.

Example:
    >>> from tfspike.rsnn import build_rsnn
    >>> model = build_rsnn("BRF", "ECG")
"""

from tfspike.rsnn.alif import ALIF, ALIFCell, alif_step  # noqa: F401
from tfspike.rsnn.brf import (BRF, RF, BRFCell, BRFParameters, BRFState, RFCell, RFState, brf_step,  # noqa: F401
                              divergence_boundary, rf_step)
from tfspike.rsnn.network import RSNN, build_rsnn, count_parameters, import_reference_npz, preset, recipe  # noqa: F401
from tfspike.rsnn.readout import LICell, LIReadout  # noqa: F401

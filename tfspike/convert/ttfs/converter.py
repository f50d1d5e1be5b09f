"""``relu_to_ttfs``: plan, build, verify and report a ReLU → TTFS conversion (spec §5)."""

import logging

import keras

from tfspike.convert.ttfs.build import build_ttfs_model
from tfspike.convert.ttfs.plan import plan
from tfspike.convert.ttfs.verify import synthetic_inputs, verify_mapping
from tfspike.errors import UserError

log = logging.getLogger(__name__)


def relu_to_ttfs(model, input_range=(0.0, 1.0), dtype=None, verify=True, return_report=False,
                 verify_inputs=None, verify_batch=16, bias_maps="auto", name=None):
    """Convert a trained Keras ReLU network into its exact TTFS twin (spec §5).

    Args:
        model: a built ``keras.Sequential`` or single-path Functional model (nested models are
            flattened). Supported layers: Dense and Conv2D (ReLU as ``activation=`` or as a separate
            ``ReLU``/``Activation`` layer, a final softmax is dropped), BatchNormalization before or
            after the ReLU, Rescaling/Normalization, MaxPooling2D, Flatten, Dropout & co. (removed).
        input_range: (p, q), the range of the model's inputs mapped to input spike times,
            u = (x − p)/(q − p) (MNIST 0, 1 on x/255; CIFAR −3, 3 on standardised images).
        dtype: dtype of the TTFS model (default: the original model's variable dtype).
        verify: run original and mapped model in float64 on ``verify_inputs`` (default: ``verify_batch``
            uniform inputs in [p, q]) and raise :class:`MappingCheckError` naming the first layer whose
            outputs differ by more than max(1e-9, 1e-11·max|value|).
        return_report: also return the mapping report (a JSON-ready dict).
        bias_maps: "auto" (a bias-map weight only on convs that need a border correction) or "all".
        name: the TTFS model's name (default ``<model name>_ttfs``).

    Returns:
        a :class:`tfspike.ttfs.TTFSModel` taking the same inputs as ``model`` and returning its logits
        (and the report if ``return_report``). Windows are the defaults (X_n = 1000); use
        :func:`tfspike.ttfs.measure_x_n` and ``TTFSModel.reset_windows`` to size them from data.

    Raises:
        UnsupportedLayersError: one message listing every unsupported layer by name and class, or the
            place where the graph is not a single ReLU chain.
        MappingCheckError: the float64 check failed (exit status 1 from ``main.py``).

    Example:
        >>> snn = relu_to_ttfs(relu_model, input_range=(-3, 3))
        >>> np.testing.assert_allclose(snn.predict(x), relu_model.predict(x), atol=1e-4)
    """
    if bias_maps not in ("auto", "all"):
        raise UserError(f"bias_maps must be 'auto' or 'all', got {bias_maps!r}")
    if not isinstance(model, keras.Model):
        raise UserError(f"relu_to_ttfs needs a keras.Model, got {type(model).__name__}")
    if not model.built or not model.inputs:
        raise UserError(f"model {model.name!r} is not built: give it an Input (or call it once) before converting")
    conversion = plan(model, input_range)
    input_shape = tuple(model.inputs[0].shape)
    input_dtype = model.inputs[0].dtype
    if dtype is None:
        ws = [w for w in model.weights if "float" in str(w.dtype)]
        dtype = str(ws[0].dtype) if ws else keras.config.floatx()
    name = name or f"{model.name}_ttfs"

    def build(as_dtype, model_name):
        return build_ttfs_model(conversion.specs, input_shape, input_dtype, input_range, as_dtype, bias_maps,
                                model_name)

    ttfs = build(dtype, name)
    check = None
    if verify:
        ttfs64 = ttfs if dtype == "float64" else build("float64", name + "_f64")
        x = verify_inputs if verify_inputs is not None else synthetic_inputs(input_shape, input_range,
                                                                             verify_batch)
        check = verify_mapping(ttfs64, conversion.specs, conversion.layers, x)
        log.info("TTFS mapping verified on %d inputs: float64 max |Δz| = %.3g", check["n_inputs"],
                 check["max_abs_logit_diff"])
    if not return_report:
        return ttfs
    report = {
        "model": model.name,
        "input_range": [float(v) for v in input_range],
        "dtype": dtype,
        "layers": [s.report() for s in conversion.specs],
        "removed": list(conversion.removed),
        "hidden_layers": [l.name for l in ttfs.spiking_layers()],
        "verification": check,
    }
    return ttfs, report

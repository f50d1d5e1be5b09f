"""``FewSpike``: an elementwise Few-Spike neuron layer (Stöckl & Maass 2021), spec fs.md §4.1."""

import keras
import numpy as np
import tensorflow as tf

from tfspike import surrogates
from tfspike.errors import UserError
from tfspike.fs.dynamics import check_voltage_scaling, fs_forward
from tfspike.fs.params import get_params


@keras.saving.register_keras_serializable(package="tfspike")
class FewSpike(keras.layers.Layer):
    """Few-Spike neuron applied elementwise: K steps of strict-threshold spiking with reset by
    subtraction; the output is Σ_k d[k]·z_k (post ordering, spec fs.md §1.1).

    Gradients use a surrogate of the spike (default: the triangle max(0, 1 - |s|), spec fs.md §1.4)
    on s = v - T (``voltage_scaling="none"``) or on s = (v - T)/(|v| + 1) (``"abs_plus_one"``,
    Stöckl's form and the default here). Neither choice changes the forward pass. The layer always
    computes in float32 (threshold comparisons in float16 change outputs).

    Args:
        params: a built-in set name (``"stoeckl_swish_k16"``, ``"stoeckl_sigmoid_k12"``,
            ``"relu_k10"``, ...), a path to a saved ``.json`` set, a dict ``{"h", "d", "T"}``,
            a tuple ``(h, d, T)`` or an :class:`~tfspike.fs.params.FSParams`. K is inferred.
        h, d, T: alternatively the three K-vectors as keywords.
        voltage_scaling: ``"abs_plus_one"`` (default) or ``"none"``; changes gradients only.
        surrogate: the spike's surrogate gradient, anything :func:`tfspike.surrogates.get` takes
            (``"triangle"``, ``"double_gaussian"``, a config dict, an object); ``None`` (default):
            ``Triangle(width=1, peak=1)``. Changes gradients only; stored in the config.
        trainable_params: ``False`` (default): h, d, T are constants stored in the config and the
            layer has no weights. ``True``: three float32 weights ``h``, ``d``, ``T`` of shape (K,).
        params_name: provenance label stored in the config (defaults to the set's name).

    Input shape:
        Any shape; any float dtype (cast to float32).

    Output shape:
        Same as the input, float32.

    Example:
        >>> y = FewSpike("stoeckl_swish_k16")(tf.constant([-1.0, 0.0, 1.0]))
        >>> n = FewSpike("stoeckl_swish_k16").spike_count(x)   # spikes per element
        >>> wide = FewSpike("stoeckl_swish_k16", surrogate=surrogates.Triangle(width=2.0, peak=0.5))
    """

    def __init__(self, params=None, *, h=None, d=None, T=None, voltage_scaling="abs_plus_one",
                 trainable_params=False, params_name=None, surrogate=None, **kwargs):
        kwargs.pop("dtype", None)
        super().__init__(dtype="float32", **kwargs)  # float32 under any global policy (§1.6)
        if params is None:
            if h is None or d is None or T is None:
                raise UserError("FewSpike needs params=... or all of h=, d=, T=")
            params = (h, d, T)
        elif h is not None or d is not None or T is not None:
            raise UserError("FewSpike: pass either params= or h=, d=, T=, not both")
        p = get_params(params)
        self.h_init, self.d_init, self.T_init = p.h, p.d, p.T
        self.K = p.K
        self.voltage_scaling = check_voltage_scaling(voltage_scaling)
        self.surrogate = surrogates.get(surrogate, default="triangle")
        self.trainable_params = bool(trainable_params)
        self.params_name = params_name if params_name is not None else p.name
        self.supports_masking = True

    @classmethod
    def from_preset(cls, name, K=10, alpha=25.0, **kwargs):
        """``"relu"`` gives FS-ReLU with the given K and alpha; other names as in ``get_params``."""
        from tfspike.fs.params import fs_relu

        return cls(fs_relu(K, alpha) if name == "relu" else name, **kwargs)

    @classmethod
    def from_tbpi(cls, K, trainable_params=True, **kwargs):
        """Published TBPI trend-line initialisation (trainable by default)."""
        return cls(f"tbpi_trend_k{int(K)}", trainable_params=trainable_params, **kwargs)

    @classmethod
    def from_json(cls, path, key=None, **kwargs):
        """Any set in our JSON format or the golden format (its ordering must be "post")."""
        from tfspike.fs.params import load_params

        return cls(load_params(path, key=key, ordering="post"), **kwargs)

    def build(self, input_shape):
        if self.trainable_params:
            self.h = self.add_weight(name="h", shape=(self.K,), dtype="float32",
                                     initializer=keras.initializers.Constant(self.h_init))
            self.d = self.add_weight(name="d", shape=(self.K,), dtype="float32",
                                     initializer=keras.initializers.Constant(self.d_init))
            self.T = self.add_weight(name="T", shape=(self.K,), dtype="float32",
                                     initializer=keras.initializers.Constant(self.T_init))

    def _hdT(self):
        if self.trainable_params:
            return self.h, self.d, self.T
        return (tf.constant(self.h_init), tf.constant(self.d_init), tf.constant(self.T_init))

    def call(self, inputs, training=None):
        h, d, T = self._hdT()
        return fs_forward(tf.cast(inputs, tf.float32), h, d, T, self.voltage_scaling, surrogate=self.surrogate)

    def spike_count(self, inputs):
        """Spikes per element (Σ_k z_k, float32) for ``inputs``; the layer output is unchanged."""
        if self.trainable_params and not self.built:
            self.build(tf.shape(inputs))
        h, d, T = self._hdT()
        return fs_forward(tf.cast(inputs, tf.float32), h, d, T, self.voltage_scaling,
                          return_spike_count=True, surrogate=self.surrogate)[1]

    def compute_output_shape(self, input_shape):
        return input_shape

    def current_params(self):
        """The (h, d, T) in use now (trained values if trainable), as float32 numpy arrays."""
        if self.trainable_params and self.built:
            return tuple(np.asarray(keras.ops.convert_to_numpy(w), np.float32) for w in (self.h, self.d, self.T))
        return self.h_init.copy(), self.d_init.copy(), self.T_init.copy()

    def get_config(self):
        config = super().get_config()
        config.update({
            "h": [float(v) for v in self.h_init],
            "d": [float(v) for v in self.d_init],
            "T": [float(v) for v in self.T_init],
            "K": self.K,
            "voltage_scaling": self.voltage_scaling,
            "trainable_params": self.trainable_params,
            "params_name": self.params_name,
            "surrogate": keras.saving.serialize_keras_object(self.surrogate),
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        K = config.pop("K", None)
        obj = cls(**config)
        if K is not None and K != obj.K:
            raise UserError(f"FewSpike config: K={K} but h has {obj.K} entries")
        return obj

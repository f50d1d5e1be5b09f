"""Operation counts of Few-Spike (FS) networks, measured from the actual spikes (issue 13).

The rule, per sample:

- **FS neurons** (``tfspike.fs.FewSpike``): every FS neuron runs its K steps whatever it spikes, so it
  costs K neuron updates; ``spikes`` is Σ_k z_k over its neurons.
- **Spike-driven synapses**: a spike of step k (it carries d[k]) reaches the fan-out of the next weight
  layer: ``units`` for a ``Dense``; for a ``Conv2D`` the output positions × filters (÷ groups) whose
  window covers the spike's input position under that layer's padding, stride and dilation
  (:func:`tfspike.energy.fanout.conv2d_fanout`; the zero padding of ``same`` is never a synapse). The
  weight layer's ``synops`` = Σ over its input elements of (spikes arriving there) × (that element's
  fan-out). Spikes reach a weight layer only through **pure routing** layers, which copy or drop elements
  and cost nothing: ``Flatten``, ``Reshape``, ``Permute``, ``Concatenate``, ``ZeroPadding``,
  ``Cropping``, ``RepeatVector``, nearest-neighbour ``UpSampling``, inference-time identities (dropout,
  noise, ``Identity``, ``Activation("linear")``).
- **Analog inputs**: any other layer makes its output analog — a weight layer fed by pixels, a non-FS
  activation, a sum of branches (``Add``), a normalisation, a bilinear upsampling or a **pooling of FS
  outputs** costs ``macs`` = its real connections (Σ of the fan-out over its analog input elements).
  Max-pooling of FS outputs is not a spike operation (choosing the window's maximum needs the decoded
  values Σ_k d[k]·z_k) and average pooling makes new analog values, so the weight layer after a pooling
  of FS outputs is counted as MACs; such layers are listed in ``report.meta["fs_fed_through"]``. A
  ``Concatenate`` of spikes and analog values is split element by element (synops for the spiking part,
  MACs for the analog part).
- ``BatchNormalization`` / ``Normalization`` (inference: x·a + b) cost one MAC per element. Weight-free
  arithmetic (adds, the sinusoidal embedding, the readout's bias) and routing are not counted.
- **ANN twin**: the same network with every FS layer replaced by its analog activation (the swish / ReLU
  model it was converted from): every weight layer costs MACs = all its connections, normalisations one
  MAC per element, as above; the activation itself is not counted.

All counts are per sample, averaged over the evaluated samples. The counting pass is the evaluation
pass: the network is replayed layer by layer in one compiled function, every FS layer computes its output
and its spike count in the same ``fs_forward`` call (the forward value is the FS layer's own, bit for bit),
so ``FSCounter.count(x, return_outputs=True)`` gives the predictions and the counts in one pass.

Cost (``benchmarks/energy_fs.py``): the pass sums every spike map over the batch in the compiled function
(routing layers route these sums, which commutes with the batch sum; per-sample spikes are kept only where
a max-pooling picks its winners, in one fused elementwise pass) and runs FS layers with Stöckl's
``abs_plus_one`` scaling as ``"none"`` (the same spikes, see :func:`_same_spikes_unscaled`): XLA on CPU
then computes the K-step chain once for the output and once for the count, where the scaled form's
division made it materialise every step.

Example:
    >>> from tfspike.energy import count_fs
    >>> report, logits = count_fs(fs_model, x_test, return_outputs=True)
    >>> accuracy = np.mean(np.argmax(logits, -1) == y_test)
    >>> report.to_dict("45nm_fp32"), report.ratio_vs_ann("loihi")
"""

import inspect

import keras
import numpy as np
import tensorflow as tf

from tfspike.energy.fanout import conv2d_fanout, dense_fanout
from tfspike.energy.report import EnergyReport, LayerCount
from tfspike.errors import UserError
from tfspike.fs.dynamics import fs_forward
from tfspike.fs.layer import FewSpike
from tfspike.surrogates.base import Surrogate

RULE = ("FS: K neuron updates per FS neuron; each spike reaches the next weight layer's exact fan-out "
        "(dense: units; conv: covered output positions x filters under its padding/stride) through pure "
        "routing layers and max-pooling (the window's winner passes its spikes on); weight layers fed by analog "
        "values (pixels, adds, normalisation, average pooling) cost MACs = connections; normalisation 1 MAC per element; ANN twin: all connections as MACs")

# Layers that only copy, move or drop elements: the spikes of an element travel with it.
ROUTING_LAYERS = (keras.layers.Flatten, keras.layers.Reshape, keras.layers.Permute, keras.layers.Concatenate,
                  keras.layers.ZeroPadding1D, keras.layers.ZeroPadding2D, keras.layers.ZeroPadding3D,
                  keras.layers.Cropping1D, keras.layers.Cropping2D, keras.layers.Cropping3D,
                  keras.layers.RepeatVector, keras.layers.UpSampling1D, keras.layers.Identity,
                  keras.layers.Dropout, keras.layers.SpatialDropout1D, keras.layers.SpatialDropout2D,
                  keras.layers.SpatialDropout3D, keras.layers.GaussianNoise, keras.layers.GaussianDropout,
                  keras.layers.AlphaDropout, keras.layers.ActivityRegularization)
NORM_LAYERS = (keras.layers.BatchNormalization, keras.layers.Normalization)
WEIGHT_LAYERS = (keras.layers.Dense, keras.layers.Conv2D)

_ANALOG, _SPIKE, _MIXED = "analog", "spike", "mixed"


def _is_routing(layer):
    if isinstance(layer, keras.layers.UpSampling2D):
        return layer.interpolation == "nearest"
    if isinstance(layer, keras.layers.Activation):
        return keras.activations.serialize(layer.activation) in ("linear", {"class_name": "function",
                                                                            "config": "linear"})
    return isinstance(layer, ROUTING_LAYERS)


def _routes_winner(layer):
    """Max-pooling of FS outputs forwards the spike train of each window's largest element (its decoded
    value is the pooled value), so spikes travel through it; picking the winner is not counted."""
    return isinstance(layer, keras.layers.MaxPooling2D) and layer.data_format == "channels_last"


def _winner_spikes(layer, values, spike_counts, pooled):
    """Spikes of each pooling window's winner (ties: the first element of the window in row-major
    order), per sample. ``pooled`` is the layer's output on ``values``: the winner is the element equal
    to it. One elementwise pass over the kh·kw strided views of the (padded) input, so that XLA fuses it
    into one loop (no window tensor, argmax or one-hot)."""
    (kh, kw), (sh, sw) = layer.pool_size, layer.strides
    if layer.padding == "same":  # pad like the pooling does: padding never wins
        pads = []
        for n, k, st in ((values.shape[1], kh, sh), (values.shape[2], kw, sw)):
            total = max((-(-n // st) - 1) * st + k - n, 0)
            pads.append([total // 2, total - total // 2])
        values = tf.pad(values, [[0, 0], *pads, [0, 0]], constant_values=float("-inf"))
        spike_counts = tf.pad(spike_counts, [[0, 0], *pads, [0, 0]])
    oh, ow = pooled.shape[1], pooled.shape[2]
    winner = tf.zeros_like(pooled)
    for a in reversed(range(kh)):  # the last assignment wins: the first position in row-major order
        for b in reversed(range(kw)):
            def view(t):
                return t[:, a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw]

            winner = tf.where(tf.equal(view(values), pooled), view(spike_counts), winner)
    return winner


def _same_spikes_unscaled(layer, h):
    """Whether the layer's spikes can be computed with ``voltage_scaling="none"`` (after
    :func:`_plus_inf_to_nan`), bit for bit.

    Voltage scaling changes gradients only: the strict Heaviside of (v - T)/(|v| + 1) is that of v - T
    for every finite v (the divisor is >= 1: no sign change, no underflow of a nonzero difference; for
    tiny |v| it rounds to 1) and both are 0 for v = NaN and v = -inf; v = +inf (0 for the scaled form,
    inf/inf) is the one difference, hence the NaN. A finite v stays finite while |h| < 2^100 (half an
    ulp of the largest float32 is 2^103). The point: XLA does not duplicate the division into the two
    loops that return the output and the spike count, and materialises every step of the chain
    instead (≈ 7x the evaluation pass on the FS-swish CNN)."""
    return (layer.voltage_scaling == "abs_plus_one" and bool(np.all(np.abs(h) < 2.0 ** 100))
            and isinstance(layer.surrogate, Surrogate) and type(layer.surrogate).__call__ is Surrogate.__call__)


def _plus_inf_to_nan(x):
    """``x`` (float32) with +inf replaced by NaN: neither spikes at any step of either voltage scaling."""
    x = tf.cast(x, tf.float32)
    return tf.where(tf.equal(x, float("inf")), float("nan"), x)


def _inner_shape(tensor, layer):
    shape = tuple(tensor.shape[1:])
    if any(s is None for s in shape):
        raise UserError(f"count_fs needs static input dimensions; layer {layer.name!r} gets {tuple(tensor.shape)}")
    return tuple(int(s) for s in shape)


def weight_layer_fanout(layer, input_shape):
    """Fan-out of every input element (no batch axis) of a ``Dense`` or ``Conv2D`` layer, float64."""
    if isinstance(layer, keras.layers.Dense):
        return np.full(input_shape, float(dense_fanout(layer.units)))
    if len(input_shape) != 3:
        raise UserError(f"Conv2D {layer.name!r} needs a rank-4 input, got (batch,) + {input_shape}")
    channels_first = layer.data_format == "channels_first"
    hw = input_shape[1:] if channels_first else input_shape[:2]
    groups = int(getattr(layer, "groups", 1) or 1)
    fmap = conv2d_fanout(hw, layer.kernel_size, layer.strides, layer.padding, layer.filters // groups,
                         layer.dilation_rate).astype(np.float64)
    return np.broadcast_to(fmap[None] if channels_first else fmap[..., None], input_shape).copy()


class FSCounter:
    """The counting pass of one functional Keras model that contains ``FewSpike`` layers.

    The model's call graph is read once (by cloning it with a ``call_function`` that records every
    layer call, its arguments and keyword arguments); :meth:`__call__` replays it with the model's own
    layers on real tensors and returns the model outputs and the per-batch spike totals.

    Args:
        model: a functional Keras model (``activations_to_fewspike`` returns one) without nested models.
        jit_compile: compile :meth:`count`'s batched pass with XLA.

    Example:
        >>> counter = FSCounter(fs_model)
        >>> report, logits = counter.count(x_test, batch_size=500, return_outputs=True)
    """

    def __init__(self, model, jit_compile=True):
        if not isinstance(model, keras.Model) or type(model).__name__ != "Functional":
            raise UserError(f"count_fs needs a functional Keras model, got {type(model).__name__} "
                            f"(tfspike.convert.activations_to_fewspike returns one)")
        self.model, self.jit_compile = model, bool(jit_compile)
        self._calls = []
        originals = {}

        def clone_function(layer):
            if isinstance(layer, keras.Model):
                raise UserError(f"count_fs needs a flat functional model; {layer.name!r} is a nested model")
            clone = layer.__class__.from_config(layer.get_config())
            originals[id(clone)] = layer
            return clone

        def call_function(clone, *args, **kwargs):
            out = clone(*args, **kwargs)
            self._calls.append((originals[id(clone)], args, kwargs, out))
            return out

        graph = keras.models.clone_model(model, clone_function=clone_function, call_function=call_function)
        self._inputs, self._outputs = list(graph.inputs), graph.outputs
        self._analyse()
        self._pass = tf.function(self.__call__, jit_compile=self.jit_compile, reduce_retracing=True)

    # -- the static structure ------------------------------------------------------------------

    def _analyse(self):
        """Which tensors carry spikes, and the static count of every counted layer."""
        state = {id(t): _ANALOG for t in self._inputs}
        self.fs_sites, self.weight_layers, self.norm_layers, self.fs_fed_through = [], [], [], {}
        self.order = []  # (kind, index) in graph order, for the report
        for layer, args, kwargs, out in self._calls:
            ins = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
            in_states = [state[id(t)] for t in ins]
            outs = keras.tree.flatten(out)
            if isinstance(layer, FewSpike):
                h, d, T = layer.current_params()
                self.fs_sites.append({"layer": layer, "params": (h, d, T), "K": int(layer.K),
                                      "n_neurons": int(np.prod(_inner_shape(ins[0], layer))),
                                      "unscaled": _same_spikes_unscaled(layer, h)})
                self.order.append(("fs", len(self.fs_sites) - 1))
                new = _SPIKE
            elif _is_routing(layer):
                new = (_ANALOG if all(s == _ANALOG for s in in_states) else
                       _SPIKE if all(s == _SPIKE for s in in_states) else _MIXED)
            elif _routes_winner(layer) and in_states == [_SPIKE]:
                new = _SPIKE  # the window's winner passes its spike train on, unchanged
            else:
                if layer.weights and not isinstance(layer, WEIGHT_LAYERS + NORM_LAYERS):
                    raise UserError(f"count_fs counts Dense, Conv2D, normalisation, FewSpike and routing layers; "
                                    f"layer {layer.name!r} ({type(layer).__name__}) has weights it cannot count")
                if isinstance(layer, WEIGHT_LAYERS):
                    shape = _inner_shape(ins[0], layer)
                    fanout = weight_layer_fanout(layer, shape)
                    self.weight_layers.append({"layer": layer, "state": in_states[0], "fanout": fanout,
                                               "connections": float(fanout.sum()),
                                               "kind": "dense" if isinstance(layer, keras.layers.Dense) else "conv"})
                    self.order.append(("weight", len(self.weight_layers) - 1))
                elif isinstance(layer, NORM_LAYERS):
                    self.norm_layers.append({"layer": layer, "elements": float(np.prod(_inner_shape(ins[0], layer)))})
                    self.order.append(("norm", len(self.norm_layers) - 1))
                if any(s != _ANALOG for s in in_states) and not isinstance(layer, WEIGHT_LAYERS):
                    self.fs_fed_through[layer.name] = type(layer).__name__
                new = _ANALOG
            for t in outs:
                state[id(t)] = new
        # the weight layers that receive spikes: their batch-summed spike map is an output of the pass
        self._spiking = [i for i, w in enumerate(self.weight_layers) if w["state"] != _ANALOG]
        # the tensors whose per-sample spikes a max-pooling needs (its own input, through pure routing)
        self._per_sample = set()
        for layer, args, kwargs, out in reversed(self._calls):
            ins = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
            if _routes_winner(layer) and state[id(ins[0])] == _SPIKE:
                self._per_sample.add(id(ins[0]))
            elif (_is_routing(layer) and all(state[id(t)] == _SPIKE for t in ins)
                  and any(id(t) in self._per_sample for t in keras.tree.flatten(out))):
                self._per_sample.update(id(t) for t in ins)

    # -- the pass ------------------------------------------------------------------------------

    def __call__(self, inputs, training=False):
        """Replay the model on ``inputs`` (a tensor or a list, one per model input).

        Returns ``(outputs, counts)``: the model's output (a list for several outputs) and a flat list of tensors —
        per FS site its spike total over the batch (float64), then per spike-fed weight layer the
        batch-summed spikes arriving at each input element (float32, exact integers), then, for
        weight layers fed by a mix of spikes and analog values, the batch-summed analog mask.
        """
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if len(inputs) != len(self._inputs):
            raise UserError(f"{self.model.name!r} takes {len(self._inputs)} inputs, got {len(inputs)}")
        env = {id(kt): tf.convert_to_tensor(v) for kt, v in zip(self._inputs, inputs)}
        # id(tensor) → the batch-summed spikes per element (a batch axis of 1: routing commutes with the
        # batch sum), the batch-summed analog mask (mixed tensors only) and, only where a max-pooling
        # needs them, the per-sample spikes
        sums, analog, spikes = {}, {}, {}
        fs_totals, weight_inputs = [], {}
        fs_i = w_i = 0

        def value(t):
            return env[id(t)] if isinstance(t, keras.KerasTensor) else t

        def batch_sum(t):
            return tf.reduce_sum(tf.cast(t, tf.float32), axis=0, keepdims=True)

        for layer, args, kwargs, out in self._calls:
            kwargs = dict(kwargs)
            if "training" in inspect.signature(layer.call).parameters and "training" not in kwargs:
                kwargs["training"] = False
            ins = [t for t in keras.tree.flatten((args, kwargs)) if isinstance(t, keras.KerasTensor)]
            if isinstance(layer, FewSpike):
                h, d, T = self.fs_sites[fs_i]["params"]
                fs_i += 1
                x, scaling = value(ins[0]), layer.voltage_scaling
                if self.fs_sites[fs_i - 1]["unscaled"]:
                    x, scaling = _plus_inf_to_nan(x), "none"
                y, n = fs_forward(x, h, d, T, scaling, return_spike_count=True, surrogate=layer.surrogate)
                env[id(out)], sums[id(out)] = y, batch_sum(n)
                if id(out) in self._per_sample:
                    spikes[id(out)] = n
                fs_totals.append(tf.reduce_sum(tf.cast(sums[id(out)], tf.float64)))
                continue
            result = layer(*keras.tree.map_structure(value, args), **keras.tree.map_structure(value, kwargs))
            for kt, v in zip(keras.tree.flatten(out), keras.tree.flatten(result)):
                env[id(kt)] = v
            if isinstance(layer, WEIGHT_LAYERS):
                if id(ins[0]) in sums:
                    weight_inputs[w_i] = (sums[id(ins[0])][0], analog.get(id(ins[0])))
                w_i += 1
            elif _routes_winner(layer) and id(ins[0]) in sums and id(ins[0]) not in analog:
                winner = _winner_spikes(layer, value(ins[0]), spikes[id(ins[0])], env[id(out)])
                sums[id(out)] = batch_sum(winner)
                if id(out) in self._per_sample:
                    spikes[id(out)] = winner
            elif _is_routing(layer) and any(id(t) in sums for t in ins):
                mixed = any(id(t) not in sums or id(t) in analog for t in ins)

                def route(per_element):  # the same routing applied to one value per input element
                    routed = layer(*keras.tree.map_structure(per_element, args),
                                   **keras.tree.map_structure(per_element, kwargs))
                    return zip(keras.tree.flatten(out), keras.tree.flatten(routed))

                def one_row(t, fill):  # shaped like one sample of t, with a batch axis of 1
                    return tf.fill(tf.concat([[1], tf.shape(env[id(t)])[1:]], 0), fill)

                def sum_map(t):
                    if not isinstance(t, keras.KerasTensor):
                        return t
                    return sums[id(t)] if id(t) in sums else one_row(t, 0.0)

                for kt, s in route(sum_map):
                    sums[id(kt)] = s
                if mixed:
                    def analog_map(t):
                        if not isinstance(t, keras.KerasTensor):
                            return t
                        if id(t) in analog:
                            return analog[id(t)]
                        # an analog input is analog in every sample of the batch
                        return one_row(t, 0.0 if id(t) in sums else tf.cast(tf.shape(env[id(t)])[0], tf.float32))

                    for kt, a in route(analog_map):
                        analog[id(kt)] = a
                elif any(id(kt) in self._per_sample for kt in keras.tree.flatten(out)):
                    for kt, s in route(lambda t: spikes[id(t)] if isinstance(t, keras.KerasTensor) else t):
                        spikes[id(kt)] = s
        counts = list(fs_totals)
        counts += [weight_inputs[i][0] for i in self._spiking]
        counts += [weight_inputs[i][1][0] for i in self._spiking if self.weight_layers[i]["state"] == _MIXED]
        outputs = [env[id(t)] for t in self._outputs]
        return (outputs[0] if len(outputs) == 1 else outputs), counts

    def zero_totals(self):
        """Accumulators (float64 numpy) matching the ``counts`` list of :meth:`__call__`."""
        shapes = [()] * len(self.fs_sites) + [self.weight_layers[i]["fanout"].shape for i in self._spiking]
        shapes += [self.weight_layers[i]["fanout"].shape for i in self._spiking
                   if self.weight_layers[i]["state"] == _MIXED]
        return [np.zeros(s, np.float64) for s in shapes]

    def count(self, x, batch_size=256, return_outputs=False):
        """Counts on ``x`` (an array, a list of arrays — one per model input — or a ``tf.data.Dataset`` of
        batches ``x`` or ``(x, y[, w])``), in compiled batched passes. Returns an :class:`EnergyReport`, and
        the model outputs (NumPy, concatenated over batches) if ``return_outputs``."""
        totals, outputs, n_samples = self.zero_totals(), [], 0
        for batch in _batches(x, batch_size, len(self._inputs)):
            out, counts = self._pass(batch)
            for acc, c in zip(totals, counts):
                acc += np.asarray(c, np.float64)
            n_samples += int(batch[0].shape[0])
            if return_outputs:
                outputs.append([np.asarray(o) for o in keras.tree.flatten(out)])
        if n_samples == 0:
            raise UserError("count_fs got no samples")
        report = self.report(totals, n_samples)
        if not return_outputs:
            return report
        flat = [np.concatenate([b[i] for b in outputs]) for i in range(len(outputs[0]))]
        return report, (flat[0] if len(flat) == 1 else flat)

    # -- the report ----------------------------------------------------------------------------

    def report(self, totals, n_samples, calls_per_sample=1, rule=RULE, meta=None):
        """An :class:`EnergyReport` from accumulated ``totals`` (sums over ``n_samples`` samples of the
        ``counts`` of :meth:`__call__`). ``calls_per_sample``: network calls per sample (the DDIM's
        diffusion steps) — the static counts (neuron updates, MACs) are multiplied by it."""
        n_fs = len(self.fs_sites)
        spike_maps = dict(zip(self._spiking, totals[n_fs:n_fs + len(self._spiking)]))
        mixed = [i for i in self._spiking if self.weight_layers[i]["state"] == _MIXED]
        analog_maps = dict(zip(mixed, totals[n_fs + len(self._spiking):]))
        layers, ann = [], []
        for kind, i in self.order:
            if kind == "fs":
                s = self.fs_sites[i]
                layers.append(LayerCount(s["layer"].name, "fs", spikes=float(totals[i]) / n_samples,
                                         neuron_updates=float(s["K"] * s["n_neurons"] * calls_per_sample)))
            elif kind == "weight":
                w = self.weight_layers[i]
                synops = float((spike_maps[i] * w["fanout"]).sum()) / n_samples if i in spike_maps else 0.0
                if w["state"] == _ANALOG:
                    macs = w["connections"] * calls_per_sample
                elif w["state"] == _MIXED:  # the mask sums to calls × samples where analog
                    macs = float((analog_maps[i] * w["fanout"]).sum()) / n_samples
                else:
                    macs = 0.0
                name = w["layer"].name
                layers.append(LayerCount(name, w["kind"], synops=synops, macs=macs))
                ann.append(LayerCount(name, w["kind"], macs=w["connections"] * calls_per_sample))
            else:
                nl = self.norm_layers[i]
                layers.append(LayerCount(nl["layer"].name, "norm", macs=nl["elements"] * calls_per_sample))
                ann.append(LayerCount(nl["layer"].name, "norm", macs=nl["elements"] * calls_per_sample))
        meta = dict(meta or {})
        meta["fs_fed_through"] = dict(self.fs_fed_through)
        return EnergyReport(layers, ann, int(n_samples), rule=rule, meta=meta)


def _batches(x, batch_size, n_inputs):
    """Lists of tensors, one per model input."""
    if isinstance(x, tf.data.Dataset):
        for batch in x:
            if isinstance(batch, tuple) and not (n_inputs > 1 and len(batch) == n_inputs):
                batch = batch[0]  # (x, y[, w])
            yield list(batch) if isinstance(batch, (list, tuple)) else [batch]
        return
    xs = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(xs) != n_inputs:
        raise UserError(f"count_fs: the model takes {n_inputs} inputs, got {len(xs)} arrays")
    n = len(xs[0])
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    for start in range(0, n, batch_size):
        yield [tf.convert_to_tensor(a[start:start + batch_size]) for a in xs]


def count_fs(model, x, batch_size=256, return_outputs=False, jit_compile=True):
    """Per-sample operation counts of an FS network and of its ANN twin on real inputs ``x``.

    The rule is in this module's docstring. Args: ``model``, a functional Keras model with
    ``FewSpike`` layers; ``x``, model inputs (array, list of arrays, or a ``tf.data.Dataset``);
    ``return_outputs``: also return the model outputs of the same pass (so evaluation and counting are
    one pass). Returns an :class:`~tfspike.energy.report.EnergyReport` (and the outputs).
    """
    counter = FSCounter(model, jit_compile=jit_compile)
    if not counter.fs_sites:
        raise UserError(f"model {model.name!r} has no FewSpike layers")
    return counter.count(x, batch_size=batch_size, return_outputs=return_outputs)

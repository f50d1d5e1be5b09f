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
(routing layers route these sums, which commutes with the batch sum). XLA on CPU has no multi-output loop
fusion, so an FS layer's spikes cost a second K-step chain beside its output's; the pass makes that chain
cheap instead (:func:`_spike_counts`: selects, no per-step +inf test), adds the counts of 8 batch slices
inside that loop before the batch sum (:func:`_folded_batch_sum`: XLA does not fuse elementwise producers
into reductions), and where a max-pooling routes spikes it picks each window's winning FS *input* (by the
same tie rule on the outputs) and counts the winners only. Tabulating the outputs of the 2^K spike
patterns (one chain for a pattern code, then a gather) costs more: XLA's gather on CPU is several times
slower than the chain.

Example:
    >>> from tfspike.energy import count_fs
    >>> report, logits = count_fs(fs_model, x_test, return_outputs=True)
    >>> accuracy = np.mean(np.argmax(logits, -1) == y_test)
    >>> report.to_dict("45nm_fp32"), report.ratio_vs_ann("loihi")
"""

import functools
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


def _winner_spikes(layer, values, sources, pooled, fill=0.0):
    """Per sample, the entry of ``sources`` at each pooling window's winner (ties: the first element of
    the window in row-major order; ``fill`` where no element wins). ``pooled`` is the layer's output on
    ``values``: the winner is the element equal to it. One elementwise pass over the kh·kw strided views
    of the (padded) input, so that XLA fuses it into one loop (no window tensor, argmax or one-hot).
    ``sources``: the spike counts, or the FS inputs (``fill`` NaN, no spikes) whose counts are then
    computed on the winners only."""
    (kh, kw), (sh, sw) = layer.pool_size, layer.strides
    if layer.padding == "same":  # pad like the pooling does: padding never wins
        pads = []
        for n, k, st in ((values.shape[1], kh, sh), (values.shape[2], kw, sw)):
            total = max((-(-n // st) - 1) * st + k - n, 0)
            pads.append([total // 2, total - total // 2])
        values = tf.pad(values, [[0, 0], *pads, [0, 0]], constant_values=float("-inf"))
        sources = tf.pad(sources, [[0, 0], *pads, [0, 0]], constant_values=fill)
    oh, ow = pooled.shape[1], pooled.shape[2]
    winner = tf.fill(tf.shape(pooled), tf.constant(fill, sources.dtype))
    for a in reversed(range(kh)):  # the last assignment wins: the first position in row-major order
        for b in reversed(range(kw)):
            def view(t):
                return t[:, a:a + (oh - 1) * sh + 1:sh, b:b + (ow - 1) * sw + 1:sw]

            winner = tf.where(tf.equal(view(values), pooled), view(sources), winner)
    return winner


# batch slices whose spike counts are added inside one fused loop before the batch sum (_folded_batch_sum)
_FOLD = 8


def _counts_apart(layer, h, T):
    """Whether the counting pass may compute the layer's spikes with :func:`_spike_counts`, apart from its
    output, bit for bit: the surrogate's forward is the strict Heaviside (the base ``Surrogate.__call__``),
    every |T[k]| >= 2^-100 and every h[k] is 0 or 2^-100 <= |h[k]| < 2^100.

    Why these bounds: ``v > T`` is ``v - T > 0`` when T is not tiny (v - T is then 0 or a normal number, so
    neither flush-to-zero nor denormals-are-zero changes its sign); a finite v stays finite (half an ulp
    of the largest float32 is 2^103), so +inf, which the ``abs_plus_one`` form never spikes on, comes
    only from the input; and a potential that differs only by a denormal (v - 0·h under flush-to-zero)
    makes the same spikes."""
    surrogate = layer.surrogate
    if not (isinstance(surrogate, Surrogate) and type(surrogate).__call__ is Surrogate.__call__):
        return False
    h, T = np.abs(np.asarray(h, np.float64)), np.abs(np.asarray(T, np.float64))
    return bool(np.all(np.isfinite(T) & (T >= 2.0 ** -100))
                and np.all((h == 0) | ((h >= 2.0 ** -100) & (h < 2.0 ** 100))))


def _spike_counts(x, h, T, voltage_scaling):
    """Σ_k z_k of the FS neuron on ``x`` without its output, for parameters that pass
    :func:`_counts_apart`: selects instead of the spike's products (cheaper for XLA on CPU, the same
    potentials), ``v > T`` for ``v - T > 0``, and for ``abs_plus_one`` +inf mapped once to NaN (neither
    spikes at any step) instead of testing ``v != +inf`` at every step. NaN inputs give 0."""
    x = tf.cast(x, tf.float32)
    if voltage_scaling == "abs_plus_one":
        x = tf.where(tf.equal(x, float("inf")), float("nan"), x)
    v, n = x, tf.zeros_like(x)
    for k in range(len(h)):
        fire = v > float(T[k])
        n = tf.where(fire, n + 1.0, n)
        if k < len(h) - 1:
            v = tf.where(fire, v - float(h[k]), v)
    return n


def _folded_batch_sum(fn, tensors, fold):
    """``Σ_batch fn(*tensors)`` (keepdims), with ``fn`` elementwise over the batch axis (a row of each
    tensor gives that row of the result). The batch is cut into ``fold`` slices (and the rows left over)
    whose results are added inside one fused loop: XLA on CPU does not fuse an elementwise producer into
    a reduction, so this writes and reduces 1/fold of the per-sample counts."""
    if fold <= 1:
        return tf.reduce_sum(fn(*tensors), axis=0, keepdims=True)
    per = tf.shape(tensors[0])[0] // fold
    total = fn(*[t[:per] for t in tensors])
    for i in range(1, fold):
        total = total + fn(*[t[i * per:(i + 1) * per] for t in tensors])
    rest = fn(*[t[fold * per:] for t in tensors])
    return tf.reduce_sum(total, axis=0, keepdims=True) + tf.reduce_sum(rest, axis=0, keepdims=True)


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
                                      "apart": _counts_apart(layer, h, T)})
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
        fold = _FOLD if self.jit_compile else 1  # without XLA nothing is fused

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
                site = self.fs_sites[fs_i]
                h, d, T = site["params"]
                fs_i += 1
                x = value(ins[0])
                if site["apart"]:
                    # the output as the layer computes it; the spikes apart (see _spike_counts): XLA would
                    # compute fs_forward's K-step chain again for the count anyway
                    y = fs_forward(x, h, d, T, layer.voltage_scaling, surrogate=layer.surrogate)
                    decode = functools.partial(_spike_counts, h=h, T=T, voltage_scaling=layer.voltage_scaling)
                    x = tf.cast(x, tf.float32)
                    env[id(out)] = y
                    sums[id(out)] = _folded_batch_sum(decode, [x], fold)
                    if id(out) in self._per_sample:  # a max-pooling counts its winners' spikes from their inputs
                        spikes[id(out)] = (x, decode)
                else:
                    y, n = fs_forward(x, h, d, T, layer.voltage_scaling, return_spike_count=True,
                                      surrogate=layer.surrogate)
                    env[id(out)], sums[id(out)] = y, batch_sum(n)
                    if id(out) in self._per_sample:
                        spikes[id(out)] = (n, None)
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
                source, decode = spikes[id(ins[0])]
                # the winners' FS inputs (no winner: NaN, no spikes), counted on 1/(kh·kw) of the elements;
                # folding the batch here costs more than it saves (the inputs are then materialised)
                winner = _winner_spikes(layer, value(ins[0]), source, env[id(out)],
                                        0.0 if decode is None else float("nan"))
                sums[id(out)] = batch_sum(winner if decode is None else decode(winner))
                if id(out) in self._per_sample:  # another max-pooling picks from these winners
                    spikes[id(out)] = (winner, decode)
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
                    def counts(t):  # per-sample spike counts of t
                        if not isinstance(t, keras.KerasTensor):
                            return t
                        source, decode = spikes[id(t)]
                        return source if decode is None else decode(source)

                    for kt, s in route(counts):
                        spikes[id(kt)] = (s, None)
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

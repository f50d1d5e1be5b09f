"""Few-Spike forward pass and gradients against the spec (fs.md §6 A and B) and the NumPy oracle."""

import json

import numpy as np
import pytest
import tensorflow as tf

from tfspike.fs import fs_forward, fs_relu, fs_relu_fast, get_params, post_to_pre, pre_to_post
from tfspike.reference import fs_numpy as R
from tfspike.surrogates.triangle import Triangle

G = np.linspace(-8, 12, 100000).astype(np.float32)


def mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def tf_forward(x, p, vs="none"):
    out, n = fs_forward(tf.constant(x), p.h, p.d, p.T, vs, return_spike_count=True)
    return out.numpy(), n.numpy()


@pytest.fixture(scope="module")
def swish16():
    return get_params("stoeckl_swish_k16")


@pytest.fixture(scope="module")
def sigmoid12():
    return get_params("stoeckl_sigmoid_k12")


@pytest.mark.golden
def test_presets_equal_golden(golden_dir):
    sets = json.load(open(golden_dir / "fs" / "published_fs_params.json"))["sets"]
    for key in ("stoeckl_swish_k16", "stoeckl_sigmoid_k12"):
        p = get_params(key)
        for name in "hdT":
            np.testing.assert_array_equal(getattr(p, name), np.float32(sets[key][name]))
    relu = get_params("relu_k10")
    for name in "hdT":
        np.testing.assert_array_equal(getattr(relu, name), np.float32(sets["stoeckl_relu_k10"][name]))


def test_A1_swish_mse(swish16):
    out, n = tf_forward(G, swish16)
    assert abs(mse(out, R.swish(G)) - 3.4459e-3) < 2e-6
    assert abs(np.abs(out - R.swish(G)).max() - 0.29516) < 1e-4
    assert abs(n.mean() - 4.1690) < 1e-3


def test_A2_orderings(swish16):
    out_pre, _ = R.forward_pre(G, *swish16.as_tuple())
    assert abs(mse(out_pre, R.swish(G)) - 0.3759) < 1e-3
    # post dynamics == pre dynamics on post_to_pre(set), bitwise; the round trip is exact
    out_post, n_post = R.forward_post(G, *swish16.as_tuple())
    out_pre2, n_pre2 = R.forward_pre(G, *post_to_pre(*swish16.as_tuple()))
    np.testing.assert_array_equal(out_post, out_pre2)
    np.testing.assert_array_equal(n_post, n_pre2)
    back = pre_to_post(*post_to_pre(*swish16.as_tuple()))
    for a, b in zip(back, swish16.as_tuple()):
        np.testing.assert_array_equal(a, b)
    out_tf, _ = tf_forward(G, swish16)
    np.testing.assert_array_equal(out_tf, out_post)


def test_A3_point_values(swish16, sigmoid12):
    x = np.float32([-5, -4, -1, 0, 1, 2, 4, 8, 12, 100])
    want = [0, -0.148306, -0.262171, 0.066156, 0.720413, 1.749569, 3.844216, 7.944288, 11.921154, 14.336085]
    spikes = [0, 1, 1, 2, 4, 4, 5, 8, 10, 16]
    out, n = tf_forward(x, swish16)
    np.testing.assert_allclose(out, want, atol=2e-5, rtol=0)
    np.testing.assert_array_equal(n, spikes)
    assert abs(float(np.sum(swish16.d)) - 14.336085) < 2e-5
    out, n = tf_forward(np.float32([-4, 0, 1, 4]), sigmoid12)
    np.testing.assert_allclose(out, [0.010218, 0.555669, 0.746340, 0.999388], atol=2e-5)
    np.testing.assert_array_equal(n, [1, 4, 5, 3])


def test_forward_trace_equals_oracle_trace(swish16):
    """return_trace: per-step potentials, surrogate arguments and spikes of the oracle, bitwise."""
    x = np.float32([-5, -4, -1, 0, 0.5, 1, 2, 4, 8, 12, 100])
    out, n, trace = fs_forward(tf.constant(x), *swish16.as_tuple(), "abs_plus_one", return_spike_count=True,
                               return_trace=True)
    want_out, want_n, vs, zs = R.forward_post(x, *swish16.as_tuple(), return_trace=True)
    np.testing.assert_array_equal(out.numpy(), want_out)
    np.testing.assert_array_equal(n.numpy(), want_n)
    assert [len(trace[k]) for k in ("v", "s", "z")] == [16, 16, 16]
    for k in range(16):
        np.testing.assert_array_equal(trace["v"][k].numpy(), vs[k])
        np.testing.assert_array_equal(trace["z"][k].numpy(), zs[k])
        np.testing.assert_array_equal(trace["s"][k].numpy(), (vs[k] - swish16.T[k]) / (np.abs(vs[k]) + np.float32(1)))
    out2, trace2 = fs_forward(tf.constant(x), *swish16.as_tuple(), return_trace=True)  # "none": s = v - T
    np.testing.assert_array_equal(out2.numpy(), want_out)
    np.testing.assert_array_equal(trace2["s"][3].numpy(), vs[3] - swish16.T[3])


def test_A4_swish_small_range(swish16):
    x = np.linspace(-5, 5, 100000).astype(np.float32)
    out, n = tf_forward(x, swish16)
    assert abs(mse(out, R.swish(x)) - 2.5793e-3) < 2e-6
    assert abs(np.abs(out - R.swish(x)).max() - 0.15398) < 1e-4
    assert abs(n.mean() - 2.7137) < 1e-3


def test_A5_sigmoid(sigmoid12):
    x = np.linspace(-10, 10, 100000).astype(np.float32)
    out, n = tf_forward(x, sigmoid12)
    assert abs(mse(out, R.sigmoid(x)) - 1.4376e-4) < 2e-7
    assert abs(np.abs(out - R.sigmoid(x)).max() - 0.057694) < 1e-5
    assert abs(n.mean() - 2.7376) < 1e-3
    out_pre, _ = R.forward_pre(x, *sigmoid12.as_tuple())
    assert abs(mse(out_pre, R.sigmoid(x)) - 0.05972) < 1e-3


def test_A6_relu():
    p = fs_relu(10, 25.0)
    np.testing.assert_array_equal(p.h, np.float32(25.0 * 2.0 ** -(np.arange(10) + 1)))
    for K, alpha in ((10, 25.0), (6, 3.0)):  # the library set equals the oracle's, entry by entry
        for a, b in zip(fs_relu(K, alpha).as_tuple(), R.fs_relu_params(K, alpha)):
            np.testing.assert_array_equal(a, b)
    x = np.linspace(0, 25, 100001).astype(np.float32)
    out, n = tf_forward(x, p)
    assert abs(np.abs(out - x).max() - 0.0244140625) < 1e-6
    assert out.max() == np.float32(24.9755859375)
    assert abs(n.mean() - 5.0008) < 2e-3
    o, _ = tf_forward(np.float32([12.5, 0.0, -1.0, -100.0]), p)
    assert o[0] == np.float32(12.4755859375)
    np.testing.assert_array_equal(o[1:], 0.0)
    xr = np.linspace(-5, 5, 100000).astype(np.float32)
    assert abs(mse(tf_forward(xr, p)[0], np.maximum(xr, 0)) - 9.921e-5) < 2e-7


def test_A7_relu_fast_path():
    p = fs_relu(10, 25.0)
    x = np.linspace(-5, 30, 100001).astype(np.float32)
    loop, _ = tf_forward(x, p)
    fast = fs_relu_fast(tf.constant(x), 10, 25.0).numpy()
    q = 25.0 / 1024
    exact_multiple = (np.float64(x) / q == np.round(np.float64(x) / q)) & (x > 0) & (x <= 25 - q)
    assert exact_multiple.sum() > 0
    np.testing.assert_array_equal(loop[~exact_multiple], fast[~exact_multiple])
    assert np.all(loop[exact_multiple] != fast[exact_multiple])


def test_A8_gaussian_spike_rate(swish16):
    x = np.random.default_rng(1).normal(-0.0632, 1.5633, 1_000_000).astype(np.float32)
    _, n = tf_forward(x, swish16)
    assert abs(n.mean() - 2.347) < 0.005


def test_A9_voltage_scaling_forward_identical(swish16, sigmoid12):
    for p, x in ((swish16, G), (sigmoid12, np.linspace(-10, 10, 100000).astype(np.float32)),
                 (fs_relu(10), np.linspace(0, 25, 100001).astype(np.float32))):
        a, na = tf_forward(x, p, "none")
        b, nb = tf_forward(x, p, "abs_plus_one")
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(na, nb)


def test_A10_layer_vs_oracle(swish16):
    from tfspike.fs import FewSpike

    x = np.random.default_rng(0).normal(0, 3, (2, 5, 7, 3)).astype(np.float32)
    for vs in ("none", "abs_plus_one"):
        y = FewSpike("stoeckl_swish_k16", voltage_scaling=vs)(x).numpy()
        np.testing.assert_array_equal(y, R.forward_post(x, *swish16.as_tuple())[0])


# ---------------------------------------------------------------- gradients (B)

def tf_grads(x, y, p, vs):
    h, d, T = (tf.Variable(a) for a in p)
    with tf.GradientTape() as tape:
        out = fs_forward(tf.constant(x), h, d, T, vs)
        loss = tf.reduce_mean(tf.square(out - tf.constant(y, tf.float32)))
    return [g.numpy() for g in tape.gradient(loss, [h, d, T])]


@pytest.fixture(scope="module")
def tbpi_k4():
    return get_params("tbpi_trend_k4").as_tuple()


B2 = {"none": ((0.0175106, -0.0145619, 0.0113114, 0), (-0.0101455, 0.0411657, -0.0206464, 0.00866841)),
      "abs_plus_one": ((0.0120091, -0.00619441, 0.0121844, 0),
                       (-0.00188834, 0.0102739, -0.00456077, 0.00444978))}
B2_D = (-0.00842177, 0.0126753, -0.0261483, 0.00344826)


@pytest.mark.parametrize("vs", ["none", "abs_plus_one"])
def test_B2_B3_parameter_gradients(tbpi_k4, vs):
    y = R.swish(G)
    gh, gd, gT = tf_grads(G, y, tbpi_k4, vs)
    want_h, want_T = B2[vs]
    for got, want in ((gh, want_h), (gd, B2_D), (gT, want_T)):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-12)
    assert gh[-1] == 0.0  # B1: the dead reset
    # the oracle's hand-written reverse pass agrees
    _, oh, od, oT = R.mse_and_grads(G, y, *tbpi_k4, voltage_scaling=vs)
    for got, want in ((gh, oh), (gd, od), (gT, oT)):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)


def test_B4_input_gradient_single_step():
    x = tf.constant(np.float32([-0.5, 0.25, 0.9, 1.0, 1.5, 2.2]))
    want = {"none": [0, 0.25, 0.9, 1, 0.5, 0], "abs_plus_one": [0, 0.512, 0.524858, 0.5, 0.256, 0.12207]}
    for vs, w in want.items():
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fs_forward(x, [0.0], [1.0], [1.0], vs)
        np.testing.assert_allclose(tape.gradient(out, x).numpy(), w, atol=1e-5)


def test_B4_pluggable_triangle_surrogate(swish16):
    """surrogate=Triangle(width, peak): same forward values; gradient peak * max(0, 1 - |s| / width)."""
    width, peak = 2.0, 0.5
    x = tf.constant(np.float32([-3.0, -0.5, 0.25, 0.9, 1.0, 1.5, 2.2, 2.9, 3.5]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = fs_forward(x, [0.0], [1.0], [1.0], surrogate=Triangle(width=width, peak=peak))
    s = x.numpy() - 1.0
    np.testing.assert_array_equal(out.numpy(), (s > 0).astype(np.float32))
    np.testing.assert_allclose(tape.gradient(out, x).numpy(), peak * np.maximum(0.0, 1.0 - np.abs(s) / width),
                               atol=1e-6)
    out_tri = fs_forward(tf.constant(G), *swish16.as_tuple(), surrogate=Triangle(width=width, peak=peak))
    np.testing.assert_array_equal(out_tri.numpy(), tf_forward(G, swish16)[0])


def test_B5_d_gradient_vs_finite_difference(tbpi_k4):
    y = R.swish(G).astype(np.float64)
    h, d, T = tbpi_k4
    _, _, gd, _ = R.mse_and_grads(G, y, h, d, T)
    # out is linear in d for a fixed spike pattern: central difference in float64
    _, _, _, zs = R.forward_post(G, h, d, T, return_trace=True)
    Z = np.stack(zs, 1).astype(np.float64)
    eps = 1e-6
    for k in range(4):
        dp, dm = d.astype(np.float64).copy(), d.astype(np.float64).copy()
        dp[k] += eps
        dm[k] -= eps
        fd = (np.mean((Z @ dp - y) ** 2) - np.mean((Z @ dm - y) ** 2)) / (2 * eps)
        assert abs(fd - gd[k]) <= 1e-4 * abs(gd[k])


@pytest.mark.parametrize("vs", ["none", "abs_plus_one"])
def test_B6_input_gradient_vs_oracle(swish16, vs):
    x = tf.constant(G)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = fs_forward(x, *swish16.as_tuple(), vs)
        total = tf.reduce_sum(out)
    gx = tape.gradient(total, x).numpy()
    ox, _, _, _ = R.backward_post(G, *swish16.as_tuple(), np.ones_like(G), vs)
    np.testing.assert_allclose(gx, ox, rtol=1e-5, atol=1e-6)
    # exactly zero wherever every surrogate argument is outside the triangle
    _, _, vs_trace, _ = R.forward_post(G, *swish16.as_tuple(), return_trace=True)
    s = np.stack([(v - t) if vs == "none" else (v - t) / (np.abs(v) + 1)
                  for v, t in zip(vs_trace, swish16.T)], 0)
    dead = np.all(np.abs(s) >= 1, axis=0)
    if vs == "none":  # the scaled surrogate keeps some support everywhere on G
        assert dead.sum() > 0
    assert np.all(gx[dead] == 0.0)


def test_B1_dead_h_gradient_any_set(swish16, sigmoid12):
    rng = np.random.default_rng(3)
    for p in (swish16, sigmoid12, fs_relu(6)):
        x = rng.normal(0, 4, 5000).astype(np.float32)
        gh, _, _ = tf_grads(x, np.sin(x), p.as_tuple(), "abs_plus_one")
        assert gh[-1] == 0.0


# ------------------------------------------- abs_plus_one without the division in the forward pass

def quotient_forward(x, h, d, T, surrogate):
    """The scaled FS neuron as plain autodiff sees it: z = surrogate((v - T)/(|v| + 1)) at every step."""
    v, out, n = x, tf.zeros_like(x), tf.zeros_like(x)
    for k in range(h.shape[0]):
        z = surrogate((v - T[k]) / (tf.abs(v) + 1.0))
        out = out + d[k] * z
        n = n + tf.stop_gradient(z)
        if k < h.shape[0] - 1:
            v = v - h[k] * z
    return out, n


def scaled_inputs(p):
    """Random values, every threshold and its float32 neighbours, specials and huge values."""
    T = np.float32(p.T)
    rng = np.random.default_rng(11)
    return np.concatenate([rng.normal(0, 4, 3000), T, np.nextafter(T, np.float32(np.inf)), np.nextafter(T, -np.float32(np.inf)),
                           [np.inf, -np.inf, np.nan, 3.4e38, -3.4e38, 1e30, -1e30, 1e-45, -1e-45, 1e-40, 0.0, -0.0]]).astype(np.float32)


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return bool(np.all((a.view(np.uint32) == b.view(np.uint32)) | (np.isnan(a) & np.isnan(b))))


def fs_and_grads(fn, x, params, mode):
    h, d, T = (tf.Variable(np.float32(a)) for a in params)

    def f(xt):
        with tf.GradientTape() as tape:
            tape.watch(xt)
            out, n = fn(xt, h, d, T)
            loss = tf.reduce_sum(tf.square(out - tf.sin(xt)))
        return out, n, tape.gradient(loss, [xt, h, d, T])

    if mode != "eager":
        f = tf.function(f, jit_compile=mode == "xla")
    out, n, grads = f(tf.constant(x))
    return out.numpy(), n.numpy(), [g.numpy() for g in grads]


def _huge_h(p):
    h = np.float32(p.h).copy()
    h[1], h[3] = 3e38, -3e38  # drives v to ±inf mid-chain
    return h, np.float32(p.d), np.float32(p.T)


@pytest.mark.parametrize("mode", ["eager", "xla"])
@pytest.mark.parametrize("case", ["swish", "sigmoid_wide_triangle", "huge_h"])
def test_scaled_forward_and_gradients_equal_autodiff_of_the_quotient(mode, case):
    """abs_plus_one computes its forward spikes without the division; outputs, spike counts and the
    gradients of x, h, d and T equal plain autodiff of surrogate((v - T)/(|v| + 1)) bit for bit."""
    p = get_params("stoeckl_sigmoid_k12" if case == "sigmoid_wide_triangle" else "stoeckl_swish_k16")
    params = _huge_h(p) if case == "huge_h" else p.as_tuple()
    surrogate = Triangle(width=2.0, peak=0.5) if case == "sigmoid_wide_triangle" else Triangle()
    x = scaled_inputs(p)
    new = fs_and_grads(lambda xt, h, d, T: fs_forward(xt, h, d, T, "abs_plus_one", return_spike_count=True,
                                                      surrogate=surrogate), x, params, mode)
    old = fs_and_grads(lambda xt, h, d, T: quotient_forward(xt, h, d, T, surrogate), x, params, mode)
    assert same_bits(new[0], old[0]) and same_bits(new[1], old[1])
    assert new[1][x == np.inf].max() == 0 and new[1][x == -np.inf].max() == 0
    assert 0 < np.isfinite(new[2][0]).sum() and np.any(new[2][0] != 0)
    for got, want in zip(new[2], old[2]):
        assert same_bits(got, want)


def test_scaled_gradients_in_graph_mode_match_to_rounding():
    """Without XLA, grappler's arithmetic optimiser rewrites both gradient graphs (the quotient form's is
    not bitwise its own eager gradient either): equal to float32 rounding of the summed terms."""
    p = get_params("stoeckl_swish_k16")
    x = scaled_inputs(p)[:3000]  # finite inputs
    new = fs_and_grads(lambda xt, h, d, T: fs_forward(xt, h, d, T, "abs_plus_one", return_spike_count=True),
                       x, p.as_tuple(), "graph")
    old = fs_and_grads(lambda xt, h, d, T: quotient_forward(xt, h, d, T, Triangle()), x, p.as_tuple(), "graph")
    assert same_bits(new[0], old[0]) and same_bits(new[1], old[1])
    for got, want in zip(new[2], old[2]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * np.abs(want).max())


def _ops(fn, *args):
    return {op.type for op in tf.function(fn).get_concrete_function(*args).graph.get_operations()}


class _OwnCall(Triangle):
    """A surrogate with its own __call__ (and so no promise that its backward pass is gradient())."""

    def __call__(self, x):
        return super().__call__(x)


def test_scaled_forward_pass_has_no_division_but_the_old_path_stays():
    from tfspike.surrogates.double_gaussian import DoubleGaussian

    p = get_params("stoeckl_swish_k16")
    spec = tf.TensorSpec([None], tf.float32)
    for surrogate in (None, DoubleGaussian(), DoubleGaussian(form="fgi")):  # backward = gradient(): no division
        assert "RealDiv" not in _ops(lambda x: fs_forward(x, *p.as_tuple(), "abs_plus_one", return_spike_count=True,
                                                          surrogate=surrogate), spec)
    # the trace reports s = (v - T)/(|v| + 1); a surrogate with its own __call__ gets the quotient
    assert "RealDiv" in _ops(lambda x: fs_forward(x, *p.as_tuple(), "abs_plus_one", return_trace=True)[1]["s"][0], spec)
    for surrogate in (_OwnCall(), lambda s: tf.cast(s > 0, tf.float32)):
        assert "RealDiv" in _ops(lambda x: fs_forward(x, *p.as_tuple(), "abs_plus_one", surrogate=surrogate), spec)
        x = scaled_inputs(p)[:3000]
        np.testing.assert_array_equal(fs_forward(tf.constant(x), *p.as_tuple(), "abs_plus_one", surrogate=surrogate).numpy(),
                                      tf_forward(x, p)[0])

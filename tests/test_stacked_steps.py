"""Stacks of batches trained in one compiled call (``make_dataset(steps_per_element=k)`` +
``tfspike.distribute.fit(steps_per_element=k)``, what ``--steps_per_execution`` runs in the TTFS CLI)
give the updates of one Keras step per batch: checked against Keras' own ``fit`` on the plain batches,
for the TTFS SNN (with its window-growth rule firing) and its ReLU twin."""

import keras
import numpy as np
import pytest

from tfspike.data.pipeline import make_dataset
from tfspike.distribute import fit
from tfspike.models.ttfs_zoo import build_relu_model, build_snn_model, make_optimizer

N, BATCH = 211, 8  # 26 full batches (stacks of 5: 5 + 1 left over) and a short batch of 3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (N, 784)).astype("float32")
    x[x < 0.5] = 0.0
    return x, rng.integers(0, 10, N)


def _model(kind):
    keras.utils.set_random_seed(1)
    if kind == "relu":
        m = build_relu_model("FC2", "MNIST")
    else:  # narrow windows, so that the growth rule widens them during training
        m = build_snn_model("FC2", "MNIST", input_is="value", x_n=0.01)
    m.compile(optimizer=make_optimizer("FC2", 5e-3), jit_compile=True,
              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    return m


@pytest.mark.parametrize("n, steps", [(N, 5), (48, 3), (45, 4), (3, 4)])
def test_stacks_hold_the_batches_in_order(n, steps):
    x, y = np.arange(n, dtype="float32")[:, None] * [1.0, -1.0], np.arange(n)  # row i holds i
    plain = make_dataset(x, y, BATCH, shuffle=True, seed=3)
    stacked = make_dataset(x, y, BATCH, shuffle=True, seed=3, steps_per_element=steps)
    for _ in range(2):  # each pass is a new permutation, the same one on both sides
        batches = [b.numpy().tolist() for _, b in plain]
        stacks = [(sx.numpy(), sy.numpy()) for sx, sy in stacked]
        assert len(stacks) == int(stacked.cardinality())
        assert all(1 <= len(s) <= steps for _, s in stacks)
        assert [row.tolist() for _, s in stacks for row in s] == batches
        for sx, sy in stacks:  # the inputs travel with their labels
            np.testing.assert_array_equal(sx[..., 0], sy)
            np.testing.assert_array_equal(sx[..., 1], -sy)
        assert sorted(i for b in batches for i in b) == list(range(n))
    if n % BATCH:
        assert stacks[-1][0].shape == (1, n % BATCH, 2)  # the short batch alone
    if n >= BATCH:
        assert all(sx.shape[1] == BATCH for sx, _ in stacks[:-1])


@pytest.mark.parametrize("kind", ["snn", "relu"])
def test_stacked_fit_gives_the_updates_of_keras_fit(kind):
    x, y = _data()
    epochs, steps = 3, 5
    keras_model = _model(kind)
    ref = keras_model.fit(make_dataset(x, y, BATCH, shuffle=True, seed=0), epochs=epochs, shuffle=False, verbose=0)
    model = _model(kind)
    seen = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            seen.append(batch)

    got = fit(model, make_dataset(x, y, BATCH, shuffle=True, seed=0, steps_per_element=steps), epochs=epochs,
              shuffle=False, verbose=0, steps_per_element=steps, callbacks=[Count()])
    stacks = -(-(N // BATCH) // steps) + 1
    assert seen == list(range(stacks)) * epochs  # callbacks see one batch per stack
    assert int(model.optimizer.iterations) == int(keras_model.optimizer.iterations) == epochs * -(-N // BATCH)
    for a, b in zip(keras_model.weights, model.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6, atol=1e-7, err_msg=a.path)
    assert set(got.history) == set(ref.history)
    for key, values in ref.history.items():
        np.testing.assert_allclose(got.history[key], values, rtol=1e-6, err_msg=key)
    if kind == "snn":
        grown = [(a, b) for (a, b) in keras_model.windows()]
        assert grown[0][1] - grown[0][0] > (1 + 0.1) * 0.01 * 10  # the growth rule fired
        np.testing.assert_allclose(model.windows(), grown, rtol=1e-12)


def test_stacked_fit_resumes_from_its_backup(tmp_path):
    x, y = _data()
    steps, epochs = 5, 4
    backup = str(tmp_path / "backup")

    class Crash(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("crash")

    def run(extra):
        model = _model("relu")
        ds = make_dataset(x, y, BATCH, shuffle=True, seed=0, steps_per_element=steps)
        return model, fit(model, ds, epochs=epochs, shuffle=False, verbose=0, steps_per_element=steps,
                          callbacks=[keras.callbacks.BackupAndRestore(backup)] + extra)

    with pytest.raises(RuntimeError, match="crash"):
        run([Crash()])
    model, history = run([])
    assert len(history.history["loss"]) == epochs - 2  # epochs 0 and 1 were backed up, not trained again
    assert int(model.optimizer.iterations) == epochs * -(-N // BATCH)

"""Pluggable surrogates: ``tfspike.surrogates.get``/``register`` and the built-in classes, against
hand-computed derivatives (spec fs.md §1.4 for the triangle, brf.md for the double Gaussian)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfspike import surrogates
from tfspike.errors import UserError
from tfspike.surrogates import DoubleGaussian, Surrogate, Triangle


@surrogates.register("rectangle_test")
class Rectangle(Surrogate):
    """A user-style surrogate: gradient 1/width on |x| < width/2 (defined only by gradient + config)."""

    def __init__(self, width=1.0):
        self.width = float(width)

    def gradient(self, x):
        return tf.cast(tf.abs(x) < self.width / 2, x.dtype) / self.width

    def get_config(self):
        return {"width": self.width}


def value_and_grad(spike, x):
    x = tf.constant(np.asarray(x, np.float32))
    with tf.GradientTape() as tape:
        tape.watch(x)
        z = spike(x)
    return z.numpy(), tape.gradient(z, x).numpy()


def test_builtins_are_registered_by_name():
    assert set(surrogates.names()) >= {"double_gaussian", "triangle", "rectangle_test"}
    assert surrogates.get("triangle") == Triangle(width=1.0, peak=1.0)
    assert surrogates.get("double_gaussian") == DoubleGaussian()
    assert surrogates.get("Triangle") == Triangle()  # the class name, as Keras configs spell it


def test_get_resolves_configs_objects_and_none():
    tri = Triangle(width=2.0, peak=0.5)
    assert surrogates.get(tri) is tri
    plain = lambda x: x  # noqa: E731 - any callable passes through
    assert surrogates.get(plain) is plain
    assert surrogates.get({"class_name": "triangle", "config": {"width": 2.0, "peak": 0.5}}) == tri
    assert surrogates.get({"class_name": "Triangle", "config": {"width": 2.0, "peak": 0.5}}) == tri
    assert surrogates.get({"class_name": "double_gaussian"}) == DoubleGaussian()
    full = keras.saving.serialize_keras_object(DoubleGaussian(h=0.2, form="fgi"))
    assert full["registered_name"] == "tfspike>DoubleGaussian"
    assert surrogates.get(full) == DoubleGaussian(h=0.2, form="fgi")
    assert surrogates.get(None, default="triangle") == Triangle()
    assert surrogates.get(None, default=tri) is tri
    assert surrogates.get(None) is None


def test_get_rejects_unknown_input_with_the_known_names():
    with pytest.raises(UserError, match="unknown surrogate 'fgi'; known: .*double_gaussian.*triangle"):
        surrogates.get("fgi")
    with pytest.raises(UserError, match="unknown surrogate 'nope'"):
        surrogates.get({"class_name": "nope", "config": {}})
    with pytest.raises(UserError, match="class_name"):
        surrogates.get({"config": {"width": 2.0}})
    with pytest.raises(UserError, match="callable"):
        surrogates.get(3.0)
    with pytest.raises(UserError, match="bad config"):  # a keyword the class does not take
        surrogates.get({"class_name": "triangle", "config": {"widht": 2.0}})


def test_bad_surrogate_arguments_are_user_errors():
    with pytest.raises(UserError, match="width"):
        Triangle(width=0.0)
    with pytest.raises(UserError, match="sigma"):
        DoubleGaussian(sigma=0.0)
    with pytest.raises(UserError, match="form"):
        DoubleGaussian(form="nope")


def test_triangle_values_by_hand():
    # strict step forward; gradient peak * max(0, 1 - |s| / width) with width 2, peak 0.5
    s = [-2.5, -1.5, -0.5, 0.0, 0.25, 1.0, 1.9, 2.0]
    z, g = value_and_grad(Triangle(width=2.0, peak=0.5), s)
    np.testing.assert_array_equal(z, [0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_allclose(g, [0, 0.125, 0.375, 0.5, 0.4375, 0.25, 0.025, 0], rtol=0, atol=1e-7)
    _, g1 = value_and_grad(Triangle(), s)  # the Few-Spike default: max(0, 1 - |s|)
    np.testing.assert_allclose(g1, [0, 0, 0.5, 1, 0.75, 0, 0, 0], rtol=0, atol=1e-7)


def test_double_gaussian_values_by_hand():
    # g(x) = 0.45878362 exp(-2 x^2) - 0.01994711 exp(-x^2 / 18) with the defaults (brf.md)
    x = np.float32([0.0, 0.5, -1.0, 2.0])
    want = 0.45878362 * np.exp(-2 * x.astype(np.float64) ** 2) - 0.01994711 * np.exp(-x.astype(np.float64) ** 2 / 18)
    for form in ("custom_gradient", "fgi"):
        z, g = value_and_grad(DoubleGaussian(form=form), x)
        np.testing.assert_array_equal(z, [0, 1, 0, 1])
        np.testing.assert_allclose(g, want, rtol=0, atol=1e-7)
    assert abs(want[0] - 0.438837) < 1e-6


def test_a_registered_user_surrogate_is_pluggable():
    z, g = value_and_grad(surrogates.get({"class_name": "rectangle_test", "config": {"width": 0.5}}),
                          [-0.3, -0.2, 0.0, 0.1, 0.3])
    np.testing.assert_array_equal(z, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(g, [0, 2, 2, 2, 0])
    # registered with Keras too: a serialised config comes back as the same object
    back = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(Rectangle(0.25)))
    assert back == Rectangle(0.25) and back != Rectangle(0.5) and back != Triangle()
    assert hash(back) == hash(Rectangle(0.25))


def test_register_refuses_taken_names_and_incomplete_classes():
    with pytest.raises(UserError, match="taken"):
        @surrogates.register("triangle")
        class OtherTriangle(Surrogate):
            pass

    with pytest.raises(UserError, match="get_config"):
        @surrogates.register("no_config_test")
        class NoConfig:
            get_config = None

            def __call__(self, x):
                return x

            @classmethod
            def from_config(cls, config):
                return cls()
    assert "no_config_test" not in surrogates.names()

"""Small facts about Keras models shared by every family."""

import math


def count_parameters(model):
    """``(trainable, non_trainable)`` scalar counts of a built Keras model's weights."""
    trainable = sum(math.prod(int(d) for d in w.shape) for w in model.trainable_weights)
    non_trainable = sum(math.prod(int(d) for d in w.shape) for w in model.non_trainable_weights)
    return int(trainable), int(non_trainable)

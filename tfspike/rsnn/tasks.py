"""The benchmark tasks of the resonate-and-fire RSNNs and the columns every preset row holds
(spec §4.2/§4.3). Plain data, free of TensorFlow: the command line reads it before loading Keras.

Example:
    >>> TASK_SHAPES["ECG"]["steps"]
    1300
"""

from tfspike.errors import UserError

# Network shape per task; every neuron uses the same shape.
TASK_SHAPES = {
    "SMNIST": dict(input_units=1, hidden_units=256, output_units=10, steps=784, per_step_labels=False),
    "PSMNIST": dict(input_units=1, hidden_units=256, output_units=10, steps=784, per_step_labels=False),
    "ECG": dict(input_units=4, hidden_units=36, output_units=6, steps=1300, per_step_labels=True),
    "SHD": dict(input_units=700, hidden_units=128, output_units=20, steps=250, per_step_labels=False),
}
TASKS = tuple(TASK_SHAPES)

# Columns every neuron's preset row must give (besides its own init ranges): readout init, loss
# window and the training recipe. ``tbptt`` (truncated BPTT every N steps) is optional, 0 if absent.
NETWORK_COLUMNS = ("tau_out_init", "label_last", "sub_seq_length")
TRAIN_KEYS = ("learning_rate", "batch_size", "val_batch_size", "test_batch_size", "epochs", "clipnorm")
OPTIONAL_COLUMNS = ("tbptt",)


def task_shape(task):
    """A copy of the network shape of ``task``; :class:`UserError` for an unknown task."""
    if task not in TASK_SHAPES:
        raise UserError(f"unknown task {task!r}; choose from {', '.join(TASKS)}")
    return dict(TASK_SHAPES[task])

"""Run the signatures of a SavedModel in plain TensorFlow: the child process of ``tfspike.export``'s check.

    python -I reload.py SAVED_MODEL_DIR INPUTS.npz OUTPUTS.npz SIGNATURES.json

``INPUTS.npz`` holds one array per ``<signature>/<input name>``; every signature named there is called
through ``loaded.signatures[<signature>]`` with those keyword arguments, and every output is written
to ``OUTPUTS.npz`` as ``<signature>/<output name>``. ``SIGNATURES.json`` receives the input and output
specs (shape with ``null`` for unknown sizes, dtype) of every signature as TensorFlow sees them.

This file is run as a script in a fresh interpreter (``-I``: the script's folder is not put on
``sys.path``) and imports only NumPy and TensorFlow: it checks that the SavedModel needs no tfspike
code, and asserts at the end that ``tfspike`` was never imported.
"""

import json
import sys


def describe(spec):
    """``{"shape": [...] (None for unknown sizes) or None (unknown rank), "dtype": "float32"}``."""
    shape = None if spec.shape.rank is None else spec.shape.as_list()
    return {"shape": shape, "dtype": spec.dtype.name}


def main(argv):
    import numpy as np
    import tensorflow as tf

    saved_dir, inputs_path, outputs_path, signatures_path = argv
    loaded = tf.saved_model.load(saved_dir)  # keep a reference: the signatures need its variables alive
    with np.load(inputs_path, allow_pickle=False) as archive:
        arrays = {k: archive[k] for k in archive.files}
    calls = {}
    for key, value in arrays.items():
        name, arg = key.split("/", 1)
        calls.setdefault(name, {})[arg] = value
    structure = {}
    for name, fn in loaded.signatures.items():
        structure[name] = {"inputs": {k: describe(s) for k, s in fn.structured_input_signature[1].items()},
                           "outputs": {k: describe(s) for k, s in fn.structured_outputs.items()}}
    outputs = {}
    for name, kwargs in calls.items():
        fn = loaded.signatures[name]
        specs = fn.structured_input_signature[1]
        result = fn(**{k: tf.constant(v, dtype=specs[k].dtype) for k, v in kwargs.items()})
        outputs.update({f"{name}/{k}": v.numpy() for k, v in result.items()})
    np.savez(outputs_path, **outputs)
    with open(signatures_path, "w") as f:
        json.dump(structure, f)
    assert "tfspike" not in sys.modules, "the SavedModel check imported tfspike"


if __name__ == "__main__":
    main(sys.argv[1:])

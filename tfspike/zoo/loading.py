"""``tfspike.zoo.load(name)``: the model ``main.py --preset=NAME`` evaluates, as a Python object.

One way to build a preset: the card's flags are parsed by the family's own command line (so defaults,
checks and file handling are those of ``main.py``), the files are fetched and SHA-256-checked, and the
family's ``preset_model(args)`` builds the network, loads the weights and compiles it with its
family's loss and metrics.
"""

import time


def load(name, compile=True, verbose=False):
    """A ready Keras model of preset ``name``: weights loaded (SHA-256 checked) and, with ``compile``,
    compiled with its family's loss and metrics (``model.evaluate`` works on the card's preprocessing).

    Args:
        name: a preset name (:func:`tfspike.zoo.list_presets`).
        compile: compile the model (``False`` returns it uncompiled).
        verbose: print the load time.
    """
    from tfspike.cli import fetch_preset_files, parse_args

    t0 = time.perf_counter()
    args, family = parse_args(["--preset", name])
    fetch_preset_files(args, log=print if verbose else (lambda *_: None))
    model = family.preset_model(args, compile=compile)
    if verbose:
        print(f"preset {name} loaded in {time.perf_counter() - t0:.2f} s")
    return model

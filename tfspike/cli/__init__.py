"""Command-line families dispatched by ``main.py`` on ``--model_type``.

Each family module defines ``MODEL_TYPES`` (the ``--model_type`` values it owns),
``add_arguments(parser)`` and ``run(args) -> int``. It must not import TensorFlow at module level,
so that flag errors are reported instantly.
"""

FAMILIES = {
    "SNN": "tfspike.cli.ttfs",
    "ReLU": "tfspike.cli.ttfs",
    "FS": "tfspike.cli.fs",
    "BRF": "tfspike.cli.rsnn",
    "RF": "tfspike.cli.rsnn",
    "ALIF": "tfspike.cli.rsnn",
    "DDIM": "tfspike.cli.ddim",
}

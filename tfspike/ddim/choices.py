"""The DDIM U-Net's named choices, free of TensorFlow and Keras so a CLI can offer them cheaply.

``FS_PARAM_SETS`` maps a ``--fs_params`` choice to a built-in ``tfspike.fs`` parameter-set name;
``ACTIVATIONS`` are the block activations :func:`tfspike.ddim.unet.residual_unet` builds by name.
"""

# --fs_params choices → built-in parameter-set names of tfspike.fs
FS_PARAM_SETS = {
    "published": "stoeckl_swish_k16",
    "random": "swish_k16_random",
    "gaussian": "swish_k16_gaussian",
    "tbpi": "swish_k16_tbpi",
    "best": "swish_k16_best",
}
ACTIVATIONS = ("swish", "fs_swish")


def fs_params_name(choice):
    """Map a ``--fs_params`` choice (published|random|gaussian|tbpi|best) to a tfspike.fs set name.

    Anything else (a built-in set name, a ``.json`` path, a dict or an (h, d, T) tuple) is passed on.
    """
    if isinstance(choice, str) and choice in FS_PARAM_SETS:
        return FS_PARAM_SETS[choice]
    return choice

"""Surrogates by name: ``register(name)`` adds a class, ``get(...)`` resolves what a layer was given.

    >>> from tfspike import surrogates
    >>> surrogates.get("triangle")                                   # Triangle(width=1.0, peak=1.0)
    >>> surrogates.get({"class_name": "triangle", "config": {"width": 2.0}})
    >>> surrogates.get(None, default="double_gaussian")              # the caller's default
"""

from tfspike.errors import UserError

# name → class; filled by @register at import of tfspike.surrogates (the built-ins register themselves)
_REGISTRY = {}
# Keras registered name ("tfspike>Triangle") and class name ("Triangle") → name, for serialised configs
_ALIASES = {}


def names():
    """The registered surrogate names, sorted."""
    return tuple(sorted(_REGISTRY))


def register(name):
    """Class decorator: make a surrogate class known to :func:`get` as ``name``.

    The class needs ``__call__`` (spike forward with a surrogate backward), ``get_config`` and
    ``from_config``; subclassing :class:`tfspike.surrogates.Surrogate` gives all but ``gradient``.
    A class not yet registered with Keras is registered as ``keras.saving.register_keras_serializable(
    package="tfspike")`` so a layer that holds it saves and loads (``.keras``, ``clone_model``).
    """
    if not isinstance(name, str) or not name:
        raise UserError(f"a surrogate name must be a non-empty string, got {name!r}")

    def decorator(cls):
        import keras  # here, not at module level: the registry itself does not need TensorFlow

        missing = [m for m in ("__call__", "get_config", "from_config") if not callable(getattr(cls, m, None))]
        if missing:
            raise UserError(f"surrogate class {cls.__name__} lacks {', '.join(missing)}")
        old = _REGISTRY.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (cls.__module__, cls.__qualname__):
            raise UserError(f"surrogate name {name!r} is taken by {old.__module__}.{old.__qualname__}")
        if keras.saving.get_registered_name(cls) == cls.__name__:  # not registered with Keras yet
            cls = keras.saving.register_keras_serializable(package="tfspike")(cls)
        _REGISTRY[name] = cls
        _ALIASES[keras.saving.get_registered_name(cls)] = name
        _ALIASES.setdefault(cls.__name__, name)  # a user class never shadows a built-in's class name
        return cls

    return decorator


def _lookup(name):
    """The class registered as ``name``, or whose class name / Keras registered name is ``name``."""
    name = _ALIASES.get(name, name)
    if name in _REGISTRY:
        return _REGISTRY[name]
    raise UserError(f"unknown surrogate {name!r}; known: {', '.join(names())}")


def get(identifier, default=None):
    """The surrogate object for ``identifier``.

    Args:
        identifier: a registered name (``"double_gaussian"``, ``"triangle"``, or the class name),
            a config dict ``{"class_name": ..., "config": {...}}`` (as ``keras.saving.
            serialize_keras_object`` writes it; ``class_name`` may also be the registered name), an
            object (any callable, returned as is) or ``None`` (``default`` is resolved instead).
        default: what ``None`` means for the caller (a name, dict or object); ``None`` → ``None``.

    Raises:
        UserError: unknown name (the message lists the known ones), a dict without ``class_name``,
            or anything that is not callable.
    """
    if identifier is None:
        return None if default is None else get(default)
    if isinstance(identifier, str):
        return _lookup(identifier)()
    if isinstance(identifier, dict):
        name = identifier.get("registered_name") or identifier.get("class_name")
        if not isinstance(name, str):
            raise UserError(f"a surrogate config needs a 'class_name', got {identifier!r}")
        config = identifier.get("config") or {}
        if not isinstance(config, dict):
            raise UserError(f"surrogate {name!r}: 'config' must be a dict, got {config!r}")
        cls = _lookup(name)
        try:
            return cls.from_config(dict(config))
        except TypeError as e:  # a keyword the class does not take
            raise UserError(f"surrogate {name!r}: bad config {config!r} ({e})") from e
    if not callable(identifier):
        raise UserError(f"a surrogate must be a name, a config dict or a callable, got {identifier!r}")
    return identifier

"""Surrogate gradients: small pluggable, serialisable objects (sinabs style)."""

"""Implicit decoders; importing this package registers them (``models.registry``)."""

from . import ciaosr, itsrn, liif, lte, metasr  # noqa: F401

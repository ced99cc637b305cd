"""Implicit decoders; importing this package registers them (``models.registry``)."""

from . import ciaosr, clit, itsrn, liif, lmciaosr, lmliif, lmlte, lte, metasr, ope, srno  # noqa: F401

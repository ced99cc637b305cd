"""Feature trunks; importing this package registers them (``models.registry``)."""

from . import edsr, rdn, swinir  # noqa: F401

"""Errors that the command line turns into one clear line and a non-zero exit."""


class CiaosrError(Exception):
    """A user-facing error: bad input, a missing file, an unknown model.

    The CLI prints ``error: <message>`` and exits with status 2; it never shows a
    traceback for these.
    """


def require_file(path, kind: str) -> None:
    """A ``CiaosrError`` unless ``path`` (a ``pathlib.Path``) is an existing file:
    ``<path>: no such file`` or ``<path>: is a folder, not <kind>``."""
    if not path.exists():
        raise CiaosrError(f"{path}: no such file")
    if path.is_dir():
        raise CiaosrError(f"{path}: is a folder, not {kind}")

"""Errors that the command line turns into one clear line and a non-zero exit."""


class CiaosrError(Exception):
    """A user-facing error: bad input, a missing file, an unknown model.

    The CLI prints ``error: <message>`` and exits with status 2; it never shows a
    traceback for these.
    """

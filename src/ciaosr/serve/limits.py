"""What a server shared by several people caps, and the defaults (docs/serving.md)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import CiaosrError

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    #: Largest upload, in bytes (``--max-upload-mb``, default 20 MiB).
    max_upload_bytes: int = 20 * MIB
    #: Largest output, and largest input, in pixels (``--max-pixels``, default 4096 x 4096).
    max_pixels: int = 4096 * 4096
    #: Jobs that may wait behind the running one (``--max-queue``); more are refused.
    max_queue: int = 8
    #: Seconds a finished job's files are kept when nobody downloads the result
    #: (``--keep-minutes``, default 15 minutes); a download deletes them at once.
    keep_seconds: float = 15 * 60

    def __post_init__(self):
        if self.max_upload_bytes < 1:
            raise CiaosrError(f"--max-upload-mb must be positive, got {self.max_upload_bytes / MIB:g}")
        for name in ("max_pixels", "max_queue"):
            if getattr(self, name) < 1:
                raise CiaosrError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.keep_seconds < 0:
            raise CiaosrError(f"--keep-minutes must not be negative, got {self.keep_seconds / 60:g}")

    @property
    def upload_text(self) -> str:
        """The upload limit in words: '20 MiB', or '2,000 bytes' below one MiB."""
        n = self.max_upload_bytes
        return f"{n / MIB:g} MiB" if n >= MIB else f"{n:,} bytes"

    def public(self) -> dict:
        """What the page shows and checks before uploading."""
        return {"max_upload_bytes": self.max_upload_bytes, "max_pixels": self.max_pixels,
                "max_queue": self.max_queue, "keep_seconds": self.keep_seconds}


__all__ = ["Limits", "MIB"]

"""Jobs: one worker thread runs them in order, one at a time, from a queue.

A job's files (the upload, a PNG of the input for the page, the result) live in a
folder of its own, made with ``tempfile`` inside the server's temporary root; the
names are the server's, never a request's. The folder is deleted when the result has
been downloaded, when the job fails or is cancelled, and ``Limits.keep_seconds`` after
it finished in any case; the root goes when the server stops.

The upload is read and checked when it arrives (``prepare``: the same reading, limits
and output rules as ``ciaosr upscale``), so a bad file is refused at once, with the
command's message; only good jobs wait in the queue. Progress is the tiler's
(``inference.tiling.Progress``: tiles done of total); a cancelled job stops at the next
decoded chunk, by :class:`Cancelled` raised from the progress callback.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import CiaosrError
from ..imageio import read_image, write_image
from ..inference.tiling import Progress, auto_tile, check_tile
from ..inference.upscale import get_model, upscale_data
from .catalogue import Catalogue
from .limits import Limits
from .settings import Output, Settings

log = logging.getLogger("ciaosr.serve")

#: Formats a browser shows: a result in another (TIFF) gets a PNG copy for the page.
BROWSER_FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
#: How often the janitor looks for jobs past their time, at most (seconds).
SWEEP_PERIOD = 30.0


class Cancelled(Exception):
    """A job stopped because its page asked."""


class QueueFull(CiaosrError):
    """No room for another job now."""


@dataclass
class Job:
    id: str
    folder: Path
    name: str  # the upload's name, for messages and the download's name
    settings: Settings
    input_path: Path
    input_size: tuple[int, int]  # (width, height), upright
    output: Output
    state: str = "queued"  # queued, running, done, failed, cancelled
    phase: str = "waiting"
    progress: Progress | None = None
    error: str | None = None
    seconds: float | None = None  # the run, model loading to written result
    finished: float | None = None  # time.monotonic() when it stopped
    result_path: Path | None = None
    preview_path: Path | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        """Stop here (``Cancelled``) if the job's page cancelled it."""
        if self.cancel.is_set():
            raise Cancelled

    def report(self, progress: Progress) -> None:
        """The tiler's progress callback: records where the job stands, and stops it
        when its page cancelled it."""
        self.check()
        self.progress = progress

    def status(self, position: int | None) -> dict:
        h, w = self.output.size_hw
        out = {"id": self.id, "state": self.state, "phase": self.phase, "position": position,
               "name": self.name, "model": self.settings.model,
               "input": {"width": self.input_size[0], "height": self.input_size[1]},
               "output": {"width": w, "height": h, "name": self.output.name, "format": self.output.fmt,
                          "bit_depth": self.output.bit_depth, "resize": self.settings.resize.description},
               "progress": None, "error": self.error, "seconds": self.seconds}
        if self.progress is not None:
            p = self.progress
            out["progress"] = {"tiles_done": p.tiles_done, "tiles_total": p.tiles_total,
                               "fraction": round(p.fraction, 4)}
        if self.state == "done" and self.result_path is not None:
            out["output"]["bytes"] = self.result_path.stat().st_size
        return out


def prepare(folder: Path, input_path: Path, name: str, settings: Settings, limits: Limits) -> Job:
    """A job for the file uploaded to ``input_path``, checked as ``ciaosr upscale`` checks
    an input (readable, one frame, within the pixel limit, an output within it and in a
    format that holds it), with a PNG of the upright input for the page."""
    data = read_image(input_path, name=name, max_pixels=limits.max_pixels)
    output = settings.output(data, name, limits.max_pixels)
    write_image(folder / "input.png", data, 8)
    return Job(secrets.token_urlsafe(16), folder, name, settings, input_path, (data.width, data.height), output)


class JobQueue:
    """The queue and its worker thread (and a janitor thread deleting old jobs).

    ``start=False`` leaves the threads unstarted (``start()`` later): tests use it to
    look at a queue that does not move."""

    def __init__(self, catalogue: Catalogue, limits: Limits, device: torch.device, *, start: bool = True):
        self.catalogue, self.limits, self.device = catalogue, limits, device
        self.root = Path(tempfile.mkdtemp(prefix="ciaosr-serve-"))
        self._cond = threading.Condition()
        self._jobs: dict[str, Job] = {}
        self._waiting: deque[str] = deque()
        self._reserved = 0
        self._running: str | None = None
        self._model: tuple[str, torch.nn.Module] | None = None
        self._closed = threading.Event()
        self._worker = threading.Thread(target=self._work, name="ciaosr-worker", daemon=True)
        self._janitor = threading.Thread(target=self._sweep_regularly, name="ciaosr-janitor", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        self._worker.start()
        self._janitor.start()

    # ---- admission --------------------------------------------------------------------
    @contextmanager
    def slot(self):
        """Room for one more job while its upload is read and checked; ``QueueFull``
        when ``max_queue`` jobs wait already."""
        with self._cond:
            if len(self._waiting) + self._reserved >= self.limits.max_queue:
                raise QueueFull(f"the queue is full ({self.limits.max_queue} jobs waiting): try again later")
            self._reserved += 1
        try:
            yield
        finally:
            with self._cond:
                self._reserved -= 1

    def new_folder(self) -> Path:
        """A new job's folder (named by ``tempfile``, inside the server's root)."""
        return Path(tempfile.mkdtemp(prefix="job-", dir=self.root))

    @staticmethod
    def discard(folder: Path) -> None:
        """Delete the folder of an upload that did not become a job."""
        shutil.rmtree(folder, ignore_errors=True)

    def submit(self, job: Job) -> int:
        """Queue ``job``; its position (1: next)."""
        with self._cond:
            self._jobs[job.id] = job
            self._waiting.append(job.id)
            self._cond.notify_all()
            return len(self._waiting)

    # ---- looking and cancelling ---------------------------------------------------------
    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def status(self, job_id: str) -> dict | None:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            position = (self._waiting.index(job_id) + 1 if job.state == "queued"
                        else 0 if job.state == "running" else None)
            return job.status(position)

    def cancel(self, job_id: str) -> dict | None:
        """Stop a job: a waiting one leaves the queue, a running one stops at its next
        chunk (its worker then deletes its files), a finished one's files go now."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                return None
            job.cancel.set()
            if job.state == "queued":
                self._waiting.remove(job_id)
                self._finish(job, "cancelled")
            elif job.state in ("done", "failed"):
                self._delete_files(job)
        return self.status(job_id)

    def forget(self, job_id: str) -> None:
        """Delete a finished job's files and record (after its download)."""
        with self._cond:
            job = self._jobs.get(job_id)
            if job is not None and job.state not in ("queued", "running"):
                del self._jobs[job_id]
                self._delete_files(job)

    def sweep(self, now: float | None = None) -> int:
        """Delete jobs that finished ``keep_seconds`` ago or more; how many."""
        now = time.monotonic() if now is None else now
        with self._cond:
            old = [j for j in self._jobs.values()
                   if j.finished is not None and now - j.finished >= self.limits.keep_seconds]
            for job in old:
                del self._jobs[job.id]
                self._delete_files(job)
        return len(old)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the threads (the running job at its next chunk) and delete every file."""
        self._closed.set()
        with self._cond:
            for job in self._jobs.values():
                job.cancel.set()
            self._cond.notify_all()
        for thread in (self._worker, self._janitor):
            if thread.is_alive():
                thread.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- the worker ---------------------------------------------------------------------
    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        job.state, job.error, job.finished = state, error, time.monotonic()
        job.phase = state
        if state != "done":
            self._delete_files(job)

    def _delete_files(self, job: Job) -> None:
        self.discard(job.folder)
        job.result_path = job.preview_path = None

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed.is_set():
                    self._cond.wait()
                if self._closed.is_set():
                    return
                job = self._jobs[self._waiting.popleft()]
                job.state, self._running = "running", job.id
            state, error = "done", None
            try:
                self._run(job)
            except Cancelled:
                state = "cancelled"
            except CiaosrError as exc:
                state, error = "failed", str(exc)
            except Exception as exc:  # the machine or a bug: the page gets one line, the log the traceback
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
                if isinstance(exc, MemoryError) or "out of memory" in first or "can't allocate" in first:
                    error = "out of memory: ask for a smaller output, or a smaller tile under Advanced"
                else:
                    log.exception("job %s failed", job.id)
                    error = f"internal error ({type(exc).__name__}: {first})"
                state = "failed"
            with self._cond:
                self._running = None
                self._finish(job, state, error)

    def _load(self, job: Job) -> torch.nn.Module:
        ref = job.settings.model_ref
        if self._model is None or self._model[0] != ref:
            self._model = None  # the previous model's memory goes before the next one loads
            try:
                self._model = (ref, get_model(ref, self.device))
            except CiaosrError as exc:  # messages name the file: say the model's id instead
                raise CiaosrError(str(exc).replace(ref, job.settings.model)) from None
        return self._model[1]

    def _run(self, job: Job) -> None:
        start = time.perf_counter()
        job.phase = "loading model"
        model = self._load(job)
        check_tile(job.settings.tile, auto_tile(model, self.device))
        job.check()
        job.phase = "reading"
        data = read_image(job.input_path, name=job.name, max_pixels=self.limits.max_pixels)
        job.phase = "upscaling"
        result = upscale_data(data, job.output.size_hw, model, device=self.device, precision=job.settings.precision,
                              tile=job.settings.tile, on_progress=job.report)
        job.phase = "writing"
        out = job.output
        job.result_path = write_image(job.folder / f"result{out.extension}", result, out.bit_depth)
        job.preview_path = job.result_path
        if out.fmt not in BROWSER_FORMATS:
            job.preview_path = write_image(job.folder / "result-preview.png", result, 8)
        job.seconds = round(time.perf_counter() - start, 3)

    def _sweep_regularly(self) -> None:
        period = min(SWEEP_PERIOD, max(self.limits.keep_seconds / 4, 0.5))
        while not self._closed.wait(period):
            self.sweep()


__all__ = ["BROWSER_FORMATS", "Cancelled", "Job", "JobQueue", "QueueFull", "prepare"]

"""Stopping a training run on SIGINT or SIGTERM within seconds, with the training state
of the last finished step saved.

A step's forward and backward passes are long calls into C++ (about 25 s for the
paper's batch on two CPU threads, docs/training.md), and Python runs a signal handler
only once the main thread is back in Python: a handler alone would wait for the step,
and clusters send SIGKILL about 30 s after SIGTERM. So the signal also wakes a thread
(``signal.set_wakeup_fd``) that saves at once while the main thread computes. Until
the optimiser steps, the weights and the optimiser's, scheduler's and EMA's states are
still those of the last finished step, so the step in progress is abandoned and nothing
needs restoring.

The training loop marks where the training state changes (``hold`` ... ``release``
around the optimiser step and the bookkeeping after it, ``commit`` around a save or the
best score of a validation); the saving thread waits for such a region to end, and
once it has saved, the main thread stops at its next one (``Stopped``). With
``exit_process`` (the command line) the process then ends right after the save, with
status 128 + the signal, without waiting for the main thread to come back from C++;
a Python caller gets its result when the main thread comes back.

Without ``wake`` (torchrun: the processes must stop at the same step, as their
collectives wait for one another), the signal only sets ``signal``; the loop sees it
after the step and calls ``finish``, which saves on the main thread. A second signal
stops at once (``KeyboardInterrupt``; with ``exit_process``, the process ends).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from typing import Callable

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_CLOSE = 0  # the byte that ends the listening thread (no signal has number 0)


class Stopped(Exception):
    """Raised in the training thread when it reaches a commit after the stop's save."""


class StopSignals:
    def __init__(self, save: Callable[[int | None], None], *, wake: bool = True, exit_process: bool = False,
                 on_exit: Callable[[], None] | None = None):
        """``save(signal)``: writes the state of the last finished step (called once,
        inside the commit lock, by the woken thread or by ``finish``). ``on_exit``: run
        before the process ends (``exit_process``), e.g. to close the log files."""
        self.signal: int | None = None
        self.error: BaseException | None = None
        self.saved = threading.Event()
        self._save, self._wake, self._exit, self._on_exit = save, wake, exit_process, on_exit
        self._lock = threading.RLock()
        self._held = False  # the main thread holds the lock until release()
        self._handled = 0  # signals the Python handler has seen
        self._previous: dict = {}
        self._sockets: tuple[socket.socket, socket.socket] | None = None
        self._old_fd: int | None = None
        self._listener: threading.Thread | None = None

    # -- installing -------------------------------------------------------------------
    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for s in SIGNALS:
                self._previous[s] = signal.getsignal(s)
                signal.signal(s, self._handler)
            if self._wake:
                self._listen()
        return self

    def __exit__(self, *exc) -> None:
        self._restore_handlers()
        if self._sockets is not None:
            signal.set_wakeup_fd(self._old_fd)
            reader, writer = self._sockets
            writer.send(bytes([_CLOSE]))
            self._listener.join()
            reader.close()
            writer.close()
            self._sockets = None

    def _restore_handlers(self) -> None:
        for s, h in self._previous.items():
            signal.signal(s, h)
        self._previous = {}

    def _handler(self, signum, frame) -> None:
        self._handled += 1
        if self._handled > 1:
            self._restore_handlers()
            raise KeyboardInterrupt
        if self.signal is None:
            self.signal = signum

    def _listen(self) -> None:
        reader, writer = socket.socketpair()
        writer.setblocking(False)
        try:
            self._old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
        except ValueError:  # not allowed here: the main thread's loop check still stops the run
            reader.close()
            writer.close()
            return
        self._sockets = (reader, writer)
        self._listener = threading.Thread(target=self._wait, args=(reader,), name="ciaosr-stop", daemon=True)
        self._listener.start()

    def _wait(self, reader: socket.socket) -> None:
        """The woken thread: the first SIGINT / SIGTERM saves, a second one ends the
        process (with ``exit_process``); other signals with a Python handler (the
        DataLoader's SIGCHLD) are ignored."""
        seen = 0
        while True:
            try:
                data = reader.recv(64)
            except OSError:
                return
            for sig in data:
                if sig == _CLOSE:
                    return
                if sig not in SIGNALS:
                    continue
                seen += 1
                if seen == 1:
                    if self.signal is None:
                        self.signal = sig
                    threading.Thread(target=self._stop, args=(sig,), name="ciaosr-save", daemon=True).start()
                elif self._exit:
                    self._end(128 + sig)

    def _stop(self, sig: int) -> None:
        self._save_once(sig)
        if self._exit:
            if self.error is not None:
                print(f"error: the training state could not be saved: {self.error}", file=sys.stderr)
            self._end(128 + sig)

    def _save_once(self, sig: int | None) -> None:
        with self._lock:  # after a commit in progress
            if self.saved.is_set():
                return
            try:
                self._save(sig)
            except Exception as exc:  # noqa: BLE001 - raised again by finish()
                self.error = exc
            finally:
                self.saved.set()

    def _end(self, status: int) -> None:
        if self._on_exit is not None:
            with contextlib.suppress(Exception):
                self._on_exit()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(status)

    # -- the training loop's side ---------------------------------------------------------
    def hold(self) -> None:
        """From here until ``release`` the training state changes (the optimiser step and
        the bookkeeping after it): a stop waits. ``Stopped`` if the stop has saved
        already. Idempotent: an optimiser's step hook may call it, and the loop again."""
        if self._held:
            return
        self._lock.acquire()
        if self.saved.is_set():
            self._lock.release()
            raise Stopped
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._lock.release()

    @contextlib.contextmanager
    def commit(self):
        """A change of the training state that a stop waits for (a save, a validation's
        best score); ``Stopped`` if the stop has saved already."""
        with self._lock:
            if self.saved.is_set():
                raise Stopped
            yield

    def finish(self) -> None:
        """After the loop saw ``signal`` (or was ``Stopped``): the stop's save, done by
        the woken thread, or here; its error, if any, raised."""
        self._save_once(self.signal)
        if self.error is not None:
            raise self.error

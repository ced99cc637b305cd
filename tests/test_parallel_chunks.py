"""Chunks of queries decoded side by side on CPU threads (``runtime.side_by_side``)."""

from __future__ import annotations

import threading

import pytest
import torch

import ciaosr
import ciaosr.models.sr_model as sr_model
from ciaosr.decoders.reference import reference_model
from ciaosr.geometry import make_cell, make_coord


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def _queries(h: int, w: int):
    return make_coord((h, w)).unsqueeze(0), make_cell((h, w), h * w).unsqueeze(0)


def _model(name: str):
    torch.manual_seed(0)
    return ciaosr.build_model(name, decoder_args={"hidden": [32, 32]}).eval()


def _threads_used(model) -> set[str]:
    """Records the thread of every ``query`` call of ``model``'s decoder."""
    names: set[str] = set()
    real = model.decoder.query

    def query(*args):
        names.add(threading.current_thread().name)
        return real(*args)

    model.decoder.query = query
    return names


@pytest.mark.parametrize("name", ["edsr-baseline-liif", "edsr-baseline-ciaosr"])
def test_side_by_side_equals_one_after_another(name, two_threads, monkeypatch):
    model = _model(name)
    coord, cell = _queries(30, 27)
    lr = torch.rand(1, 3, 10, 9)
    with torch.no_grad():
        enc = model.encode(lr)
        threads = _threads_used(model)
        progress = []
        side = model.decode_chunked(enc, coord, cell, chunk=64, on_chunk=lambda done, total: progress.append(done))
        workers = {t for t in threads if t.startswith("ciaosr-chunk")}
        assert 1 <= len(workers) <= 2 and threads - workers == {threading.current_thread().name}  # the first chunk
        monkeypatch.setattr(sr_model, "chunk_workers", lambda *args: 1)
        enc = model.encode(lr)
        serial = model.decode_chunked(enc, coord, cell, chunk=64)
    assert progress == sorted(progress) and progress[-1] == 30 * 27 and len(progress) == -(-30 * 27 // 64)
    assert (side - serial).abs().max().item() < 1e-6
    assert torch.get_num_threads() == 2  # the caller's count is back


def test_a_failing_progress_callback_stops_the_decoding(two_threads):
    model = _model("edsr-baseline-liif")
    coord, cell = _queries(40, 40)
    calls = []

    def cancel(done, total):
        calls.append(done)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with torch.no_grad(), pytest.raises(KeyboardInterrupt):
        model.decode_chunked(model.encode(torch.rand(1, 3, 10, 10)), coord, cell, chunk=16, on_chunk=cancel)
    assert len(calls) == 3 and torch.get_num_threads() == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("ciaosr-chunk")]  # pool shut down


@pytest.mark.parametrize("name", ["edsr-baseline-liif", "edsr-baseline-ciaosr"])
def test_workers_take_the_callers_autocast(name, two_threads, monkeypatch):
    model = _model(name)
    coord, cell = _queries(24, 24)
    lr = torch.rand(1, 3, 8, 8)
    outs = {}
    for mode in ("side by side", "serial", "fp32"):
        if mode == "serial":
            monkeypatch.setattr(sr_model, "chunk_workers", lambda *args: 1)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
            outs[mode] = model.decode_chunked(model.encode(lr), coord, cell, chunk=50).float()
    assert (outs["side by side"] - outs["serial"]).abs().max().item() < 1e-6
    assert (outs["side by side"] - outs["fp32"]).abs().max().item() > 1e-4  # bf16 did reach the workers


@pytest.mark.parametrize("case", ["reference", "autograd", "one thread"])
def test_decoded_one_after_another_on_the_callers_thread(case, two_threads):
    model = _model("edsr-baseline-liif")
    if case == "reference":
        model = reference_model(model)
    if case == "one thread":
        torch.set_num_threads(1)
    coord, cell = _queries(20, 20)
    threads = _threads_used(model)
    with torch.enable_grad() if case == "autograd" else torch.no_grad():
        out = model.decode_chunked(model.encode(torch.rand(1, 3, 8, 8)), coord, cell, chunk=32)
    assert threads == {threading.current_thread().name}
    assert out.shape == (1, 400, 3) and out.requires_grad == (case == "autograd")

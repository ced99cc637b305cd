"""Shared test settings.

The shared data (datasets, official weights, parity vectors) is found through one
setting: the environment variable ``CIAOSR_SHARED``, defaulting to ``../shared`` from
the repository root. Under CI (``CI=true``) missing data is a failure; elsewhere the
tests that need it are skipped with the reason.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def shared_root() -> Path:
    return Path(os.environ.get("CIAOSR_SHARED", REPO.parent / "shared")).resolve()


def require_shared(relpath: str) -> Path:
    """Path of ``relpath`` inside the shared folder; skip (or fail under CI) if absent."""
    path = shared_root() / relpath
    if not path.exists():
        msg = f"shared data missing: {path} (set CIAOSR_SHARED)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture
def shared():
    """Callable fixture: ``shared('parity/x.pt')`` -> Path, skipping when absent."""
    return require_shared


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory) -> str:
    """A tiny CiaoSR model with random weights, saved as safetensors: CLI runs in milliseconds."""
    import ciaosr

    torch.manual_seed(0)
    net = ciaosr.build_model("edsr-baseline-ciaosr", {"num_blocks": 1, "mid_channels": 8}, {"hidden": [16]})
    return str(ciaosr.save_checkpoint(net, tmp_path_factory.mktemp("tiny-model") / "tiny.safetensors"))


@pytest.fixture(autouse=True)
def _keep_thread_count():
    """`ciaosr upscale` sets torch's CPU threads (--threads, default auto) in this
    process; give the next test the count it would have had, and no automatic count that
    would follow the machine's load from then on."""
    from ciaosr import runtime

    n = torch.get_num_threads()
    yield
    runtime._auto_threads = None
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)

"""ciaosr.decoders.gemm: the CPU products through BLAS or oneDNN give the same numbers."""

import pytest
import torch

import ciaosr
from ciaosr.decoders import gemm
from ciaosr.errors import CiaosrError

needs_onednn = pytest.mark.skipif(not gemm._onednn_available(), reason="this PyTorch has no oneDNN linear")


@pytest.fixture
def use(monkeypatch):
    """Set CIAOSR_CPU_GEMM for one test; the choice is forgotten before and after."""
    def choose(name):
        monkeypatch.setenv(gemm.ENV, name)
        gemm.reset()
    yield choose
    gemm.reset()


@pytest.mark.parametrize("backend", ["blas", pytest.param("onednn", marks=needs_onednn)])
def test_linear_and_matmul_match_float64(use, backend):
    use(backend)
    gen = torch.Generator().manual_seed(1)
    x, w, b = torch.randn(37, 64, generator=gen), torch.randn(48, 64, generator=gen), torch.randn(48, generator=gen)
    exact = torch.addmm(b.double(), x.double(), w.double().t())
    with torch.no_grad():
        assert gemm.backend() == backend
        torch.testing.assert_close(gemm.linear(x, w, b).double(), exact, rtol=0, atol=1e-5)
        torch.testing.assert_close(gemm.linear(x, w, b, relu=True).double(), exact.relu(), rtol=0, atol=1e-5)
        torch.testing.assert_close(gemm.linear(x, w).double(), exact - b.double(), rtol=0, atol=1e-5)
        out = torch.empty(37, 48)
        y = gemm.linear(x, w, b, out=out)
        torch.testing.assert_close(y.double(), exact, rtol=0, atol=1e-5)
        assert (y.data_ptr() == out.data_ptr()) == (backend == "blas")  # oneDNN cannot write into a buffer
        a = torch.randn(64, 37, generator=gen).t()  # transposed views, as the non-local attention passes
        bt = torch.randn(20, 64, generator=gen).t()
        torch.testing.assert_close(gemm.matmul(a, bt).double(), a.double() @ bt.double(), rtol=0, atol=1e-5)


@needs_onednn
def test_autograd_and_other_dtypes_keep_pytorchs_products(use):
    use("onednn")
    x = torch.randn(8, 16, requires_grad=True)
    w = torch.randn(4, 16)
    y = gemm.linear(x, w, relu=True)
    assert y.grad_fn is not None  # training differentiates through the plain operator
    with torch.no_grad():
        assert gemm.linear(x.double(), w.double()).dtype == torch.float64


def test_auto_probes_once_and_takes_the_faster(use):
    use("auto")
    choice = gemm.backend()
    times = dict(gemm._probe)
    assert set(times) <= {"blas", "onednn"} and times["blas"] > 0
    expected = "onednn" if times.get("onednn", float("inf")) * gemm.MARGIN <= times["blas"] else "blas"
    assert choice == expected
    assert gemm.backend() == choice and gemm._probe == times  # no second probe


def test_unknown_backend_is_one_line_error(use):
    use("cublas")
    with pytest.raises(CiaosrError, match="CIAOSR_CPU_GEMM must be one of auto, blas, onednn"):
        gemm.backend()


@needs_onednn
@pytest.mark.parametrize("name", ["edsr-baseline-ciaosr", "edsr-baseline-liif", "edsr-baseline-lte"])
def test_models_agree_under_both_backends(use, name):
    torch.manual_seed(0)
    model = ciaosr.build_model(name).eval()
    lr = torch.rand(1, 3, 20, 17)
    outs = []
    for backend in ("blas", "onednn"):
        use(backend)
        with torch.no_grad():
            outs.append(model.upsample(lr, (53, 61)))
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-5)



@needs_onednn
def test_autocast_keeps_pytorchs_cast_products(use):
    use("onednn")
    a, b = torch.randn(8, 16), torch.randn(16, 4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert gemm.matmul(a, b).dtype == torch.bfloat16  # as `a @ b` under autocast

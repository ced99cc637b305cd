"""Where CiaoSR's inference time goes, against LIIF, and how far the algebra allows going.

For one input size (x4, EDSR-baseline encoder, random weights, CPU) it times each stage
of fast CiaoSR (encoder, non-local attention, per-pixel tables, per-query decoding with
its banded logit tables) and of LIIF computed as LIIF's code does, counts the multiply-adds per query
of each decoder from its layer shapes, and reports the rate each decoder reaches against
a plain matrix product of the decoder's shape (about the ceiling for this work). From
these: the CiaoSR / LIIF-reference time ratio that the multiply-adds alone impose when
both decode at the same rate.

    python benchmarks/ciaosr_breakdown.py --size 192 --threads 1
"""

from __future__ import annotations

import argparse
import datetime
import os
import time

import torch
from torch import nn

import ciaosr
from ciaosr.geometry import make_cell, make_coord
from ciaosr.decoders.reference import reference_model
from ciaosr.models.sr_model import EncodedImage
from machine_info import cpu_name  # benchmarks/ is the script folder, on sys.path


DECODING = "ciaosr per-query decoding (with the logit tables)"  # the stage the rates are taken on


def _linears(mlp) -> list[nn.Linear]:
    return [m for m in mlp.layers if isinstance(m, nn.Linear)]


def _macs(layers: list[nn.Linear]) -> int:
    return sum(m.in_features * m.out_features for m in layers)


def decoder_macs_per_query(model) -> dict[str, int]:
    """Multiply-adds per query for the ways each decoder can be computed."""
    dec = model.decoder
    out = {}
    if hasattr(dec, "imnet_k"):
        k, v, q = _linears(dec.imnet_k), _linears(dec.imnet_v), _linears(dec.imnet_q)
        pos = 4 * k[0].out_features  # the (rel, cell) half of a split first layer
        out["ciaosr reference"] = 4 * (_macs(k) + _macs(v)) + _macs(q)
        # fast: first layers split (feature half per LR pixel), the last layer of imnet_k
        # replaced by a dot product with the tabulated W^T (q * k).
        out["ciaosr fast"] = (4 * (pos + _macs(k[1:-1]) + k[-1].in_features)
                              + 4 * (pos + _macs(v[1:])) + _macs(q))
        # training (sparse queries, about one per LR pixel): no logit tables, and the
        # per-LR-pixel feature halves of the first layers shared by ~1 query only.
        per_pixel = k[0].out_features * (k[0].in_features - 4) + v[0].out_features * (v[0].in_features - 4)
        out["ciaosr fast, training (1 query per LR pixel)"] = (
            4 * (pos + _macs(k[1:])) + 4 * (pos + _macs(v[1:])) + _macs(q) + per_pixel)
    else:
        m = _linears(dec.imnet)
        out["liif reference"] = 4 * _macs(m)
        out["liif fast"] = 4 * (4 * m[0].out_features + _macs(m[1:]))
    return out


def gemm_rate(rows: int, width: int, repeats: int = 20) -> float:
    """GMAC/s of (rows, width) @ (width, width) plus bias, the decoders' typical product."""
    x, w, b = torch.randn(rows, width), torch.randn(width, width), torch.randn(width)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        torch.nn.functional.linear(x, w, b)
        best = min(best, time.perf_counter() - t)
    return rows * width * width / best / 1e9


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


@torch.no_grad()
def breakdown(size: int, scale: int, repeats: int) -> dict:
    torch.manual_seed(0)
    ciao = ciaosr.build_model("edsr-baseline-ciaosr").eval()
    liif_fast = ciaosr.build_model("edsr-baseline-liif").eval()
    liif = reference_model(liif_fast)  # LIIF computed as LIIF's code does
    lr = torch.rand(1, 3, size, size)
    h = w = size * scale
    coord = make_coord((h, w)).unsqueeze(0)
    cell = make_cell((h, w), h * w).unsqueeze(0)
    nq = h * w
    ciao.upsample(lr[..., :16, :16], (64, 64))  # warm-up
    liif.upsample(lr[..., :16, :16], (64, 64))

    stages: dict[str, list[float]] = {}
    for _ in range(repeats):
        x = ciao.normalise(lr)
        feat, t_enc = _timed(lambda: ciao.encoder(x.contiguous(memory_format=torch.channels_last)))
        _, t_nl = _timed(lambda: ciao.decoder.cs_attn(feat))
        prep, t_prep = _timed(lambda: ciao.decoder.prepare(feat))  # runs the non-local attention too
        t_prep = max(t_prep - t_nl, 0.0)
        enc = EncodedImage(x, feat, prep)
        _, t_dec = _timed(lambda: ciao.decode_chunked(enc, coord, cell))
        liif_enc, t_lenc = _timed(lambda: liif.encode(lr))
        _, t_ldec = _timed(lambda: liif.decode_chunked(liif_enc, coord, cell))
        for k, v in {"ciaosr encoder": t_enc, "ciaosr non-local attention": t_nl,
                     "ciaosr per-pixel tables": t_prep,
                     DECODING: t_dec, "liif-reference encoder": t_lenc,
                     "liif-reference per-query decoding": t_ldec}.items():
            stages.setdefault(k, []).append(v)
    med = {k: sorted(v)[len(v) // 2] for k, v in stages.items()}
    macs = {**decoder_macs_per_query(ciao), **decoder_macs_per_query(liif_fast)}
    chunk = ciao.decoder.cpu_chunk or 30000
    return {"size": size, "scale": scale, "queries": nq, "stages": med, "macs": macs,
            "gemm_rate": gemm_rate(4 * chunk, 256),
            "rate_ciaosr": nq * macs["ciaosr fast"] / med[DECODING] / 1e9,
            "rate_liif_ref": nq * macs["liif reference"] / med["liif-reference per-query decoding"] / 1e9}


def report(r: dict, threads: int) -> str:
    st, macs = r["stages"], r["macs"]
    ciao_total = sum(v for k, v in st.items() if k.startswith("ciaosr"))
    liif_total = sum(v for k, v in st.items() if k.startswith("liif"))
    lines = [f"- date: {datetime.date.today().isoformat()}; {cpu_name()}, {os.cpu_count()} cores; "
             f"torch {torch.__version__}, {threads} thread(s)",
             f"- {r['size']}x{r['size']} input x{r['scale']}: {r['queries']:,} queries; medians of the repeats", "",
             "| stage | time (s) | share |", "| --- | ---: | ---: |"]
    for k, v in st.items():
        total = ciao_total if k.startswith("ciaosr") else liif_total
        lines.append(f"| {k} | {v:.3f} | {100 * v / total:.0f}% |")
    lines += [f"| ciaosr total | {ciao_total:.3f} | |", f"| liif-reference total | {liif_total:.3f} | |", "",
              "| decoder | multiply-adds per query |", "| --- | ---: |"]
    lines += [f"| {k} | {v:,} |" for k, v in macs.items()]
    ratio = macs["ciaosr fast"] / macs["liif reference"]
    fixed = ciao_total - st[DECODING]
    same_rate = fixed + st["liif-reference per-query decoding"] * ratio
    lines += ["",
              f"- matrix product (4096 x 256) @ (256 x 256) + bias, best of 20: {r['gemm_rate']:.1f} GMAC/s",
              f"- per-query decoding runs at {r['rate_ciaosr']:.1f} GMAC/s (CiaoSR fast) and "
              f"{r['rate_liif_ref']:.1f} GMAC/s (LIIF reference)",
              f"- multiply-adds per query, CiaoSR fast / LIIF reference: {ratio:.2f}x; time end to end: "
              f"{ciao_total / liif_total:.2f}x",
              f"- had CiaoSR decoded at LIIF reference's rate: {same_rate / liif_total:.2f}x "
              f"({fixed:.2f} s of encoder, attention and tables + {ratio:.2f}x LIIF's decoding)"]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=48)
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(report(breakdown(args.size, args.scale, args.repeats), torch.get_num_threads()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

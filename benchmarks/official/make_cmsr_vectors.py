"""Make tests/data/official/lmf_cmsr_vectors.pt from the official LMF code (HeZongyao/LMF):
its CMSR forward (``query_rgb_cmsr``) and its table search (``update_scale2mean``, what
``init_cmsr.py`` runs per image) for LM-LIIF, LM-LTE and LM-CiaoSR, on the small
official-format checkpoints that make_lmf_vectors.py made (``lmf_lmliif.pth``,
``lmf_lmlte.pth``, ``lmf_lmciaosr_swinir.pth``, read from ``--out``).

Runs in the throwaway environment of README.md beside this file; the official modules are
imported unmodified (``.cuda()`` a no-op).

Per variant, on the LR of its vectors file (h x w):

* the fixed tables: thresholds from the official mean |shift| (``mod_mean``) of the x6
  modulations, its 30th, 60th and 85th percentiles rounded to 3 decimals (so that every
  level renders some pixels): ``tables_a`` = ``{3: {1: 0}, 7: {1: q30, 2: q60, 4: q85}}``
  (x6 picks the table of 7, and renders x1, x2, x4 and x6 levels) and ``tables_b`` =
  ``{6: {1: q30, 2: q60, 4: 1}}`` (x6.5 falls past the last table; the x4 level is the
  last and is resampled to the output);
* the official forward with each (``test.py``'s cell multiplier ``max(s / 4, 1)``) at
  x6 (``tables_a``) and x6.5 (``tables_b``), whole grid;
* the table search at x6 on two LRs (the vectors' and one uniform [0, 1) from
  ``torch.Generator().manual_seed(1)``), from the fresh table of ``init_cmsr.py``, with
  the first MSE limit of 1e-4, 1e-3, 1e-2, 1e-1, 1 that leaves a threshold strictly
  between 0 and the largest tried: the limit and the resulting table.
"""

import argparse
import copy
import os

import torch

from make_lmf_vectors import SMALL_SWINIR  # beside this file
from model_vectors import enter_code_base

VARIANTS = {"lmliif": "lmf_lmliif", "lmlte": "lmf_lmlte", "lmciaosr": "lmf_lmciaosr_swinir"}
FRESH = [1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32]


def official_model(models, path, cmsr_spec):
    spec = copy.deepcopy(torch.load(path)["model"])
    sd = spec.pop("sd")
    spec["args"]["cmsr_spec"] = cmsr_spec
    model = models.make(spec)
    if "swinir" in path:
        from models.swinir import SwinIR
        model.encoder = SwinIR(**SMALL_SWINIR, upsampler="none")
    model.load_state_dict(sd)
    return model.eval()


def grid(make_coord, size, mult):
    coord = make_coord(size).unsqueeze(0)
    cell = torch.ones_like(coord)
    cell[:, :, 0] *= 2 / size[0]
    cell[:, :, 1] *= 2 / size[1]
    return coord, cell * mult


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--code", required=True, help="a checkout of HeZongyao/LMF")
    ap.add_argument("--out", required=True, help="tests/data/official (reads the checkpoints, writes the vectors)")
    a = ap.parse_args()
    code, out = os.path.abspath(a.code), os.path.abspath(a.out)
    commit = enter_code_base(code)
    import models
    from utils import make_coord

    result = {}
    for variant, stem in VARIANTS.items():
        path = os.path.join(out, f"{stem}.pth")
        lr = torch.load(os.path.join(out, f"{stem}_vectors.pt"))["lr"]
        inp = (lr - 0.5) / 0.5
        h, w = lr.shape[-2:]
        x6, x65 = (6 * h, 6 * w), (int(6.5 * h), int(6.5 * w))

        # the x6 mean |shift|, caught where the official CMSR forward receives the modulations
        model = official_model(models, path, {"mse_threshold": 0, "s2m_tables": {6: {1: 0}}, "log": False})
        caught = {}
        real = model.query_rgb_cmsr

        def catch(*args, **kw):
            caught["mod"] = args[-3] if len(args) >= 4 else kw["mod"]
            return real(*args, **kw)
        model.query_rgb_cmsr = catch
        with torch.no_grad():
            model(inp, *grid(make_coord, x6, 1.5))
        d = model.mod_dim
        mean = caught["mod"][:, d // 2:d].abs().mean(1).flatten()
        q = [round(torch.quantile(mean, p).item(), 3) for p in (0.3, 0.6, 0.85)]
        tables_a = {3: {1: 0}, 7: {1: q[0], 2: q[1], 4: q[2]}}
        tables_b = {6: {1: q[0], 2: q[1], 4: 1}}

        cases = []
        for size, tables in ((x6, tables_a), (x65, tables_b)):
            model = official_model(models, path, {"mse_threshold": 0, "s2m_tables": copy.deepcopy(tables), "log": False})
            scale = size[0] / h
            with torch.no_grad():
                pred = model(inp, *grid(make_coord, size, max(scale / 4, 1)))
            cases.append({"size": size, "tables": tables, "pred": pred[0].clone()})
            print(variant, size, tables, "mean", pred.mean().item())

        lr2 = torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(1))
        search = None
        for mse in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
            tables = {6: {s: 1 for s in FRESH if s <= 6}}
            model = official_model(models, path, {"mse_threshold": mse, "s2m_tables": tables, "updating_scale": 6})
            with torch.no_grad():
                for img in (lr, lr2):
                    model((img - 0.5) / 0.5, *grid(make_coord, x6, 1.5))
            top = 1 if variant == "lmliif" else 0.5
            table = {float(k): float(v) for k, v in tables[6].items()}
            search = {"mse": mse, "lrs": torch.cat([lr, lr2]), "size": x6, "table": table}
            if any(0 < v < top for v in table.values()):
                break
        print(variant, "search", search["mse"], search["table"])
        result[variant] = {"cases": cases, "search": search}

    note = (f"Made by benchmarks/official/make_cmsr_vectors.py with the official LMF code (HeZongyao/LMF @ "
            f"{commit[:7]}, unmodified; .cuda() a no-op), torch {torch.__version__}, one thread.")
    torch.save({"note": note, **result}, os.path.join(out, "lmf_cmsr_vectors.pt"))
    print(note)


if __name__ == "__main__":
    main()

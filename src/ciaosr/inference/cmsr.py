"""LMF's CMSR (cumulative multi-scale rendering; He & Jin, CVPR 2024; official code
HeZongyao/LMF, ``query_rgb_cmsr``, ``update_scale2mean`` and ``init_cmsr.py``): a test-time
option of the LMF decoders (LM-LIIF, LM-LTE, LM-CiaoSR) that renders parts of an image
past the training range at lower scales and interpolates them.

The mask is the mean |shift| of an LR pixel's modulations over the render MLP's layers
(``shift_means``, from the output scale's modulations): where it is small, the render
MLP's output varies slowly, and a lower scale interpolated up is close enough. A *table*
per output scale gives, for each decode scale ``d`` below it, the largest mean |shift|
``t_d`` still rendered at ``d`` within an MSE threshold; the file (YAML, the official
layout) holds one table per output scale: ``{scale: {d: t_d, ...}, ...}``.

Rendering an H x W output of an h x w LR at ``s = sqrt(H W / (h w))`` (only when there are
more than ``max_train_scale^2`` queries per LR pixel; otherwise the plain forward):

* the table of the first output scale >= s (else the last); its decode scales below s
  with their thresholds, then s itself with 1 unless the last threshold is already 1;
* level ``i`` (decode scale d, skipped below 1) is the grid ``int(h d) x int(w d)`` whose
  coordinates are the LR pixel centres interpolated bilinearly (``align_corners`` false,
  so the border rows and columns repeat the outermost centres); it renders the pixels
  whose mean |shift| (nearest LR pixel) lies in its band: at most ``t_1`` for the first,
  ``t_{i-1}..t_i`` for the middle ones, at least ``t_{i-1}`` for the last, with the cell
  ``2 / int(h d)`` (times ``max(d / 4, 1)``) and the output's modulations;
* starting from the normalised LR, each level is the previous one resampled bilinearly
  (border) to its grid with its own pixels pasted in; the last is resampled to the output
  grid when it is not that grid.

Building a table (the official ``init_cmsr.py``): on HR images at one scale (the LIIF
rule: LR by PIL bicubic, HR cropped), start from 1 at the decode scales 1, 1.5, 2, 3, 4, 6,
8, 12, 16, 24, 32 up to the scale; per image and decode scale below it, render the whole
output grid at that scale (cells not clipped), resample it to the output, and compare with
the direct rendering in bins of mean |shift| (every 0.01 from 0 to 0.5, LM-LIIF to 1; a
bin is the pixels within 0.001): the threshold is the last bin, from the smallest up,
whose MSE stays within the limit (empty bins skipped), never raised, and lower scales
never above higher ones; the output scale itself gets the last bin not passed.

Where this differs from the official code: images go one at a time (the official views
assume one image per batch); a level that selects no pixel is skipped as in the official
code, but when that is the last one the output is still resampled (the official code then
fails), as is a last level whose grid is not the output's (non-uniform scales: the
official code fails).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
import yaml

from ..data.benchmark import on_the_fly_pair
from ..decoders.sampling import feature_coord, sample_nearest
from ..errors import CiaosrError
from ..geometry import make_cell, make_coord

#: The decode scales a new table starts from (those up to its output scale), as the official script.
TABLE_SCALES = (1, 1.5, 2, 3, 4, 6, 8, 12, 16, 24, 32)
#: The official default MSE limit (``--mse_threshold``, in the normalised space).
DEFAULT_MSE = 2e-5
CHUNK = 30000

Tables = dict  # {output scale: {decode scale: threshold}}


def check_model(model) -> None:
    if not hasattr(model.decoder, "shift_means"):
        name = (model.spec or {}).get("name", type(model.decoder).__name__)
        raise CiaosrError(f"CMSR works with LMF's decoders (lmliif, lmlte, lmciaosr), not {name}")


def load_tables(path) -> Tables:
    """A table file (the official YAML layout), checked: a one-line error if malformed."""
    try:
        with open(path) as f:
            raw = yaml.safe_load(f)
    except OSError as exc:
        raise CiaosrError(f"CMSR table {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError:
        raise CiaosrError(f"CMSR table {path}: not YAML") from None
    try:
        tables = {float(s): {float(d): float(t) for d, t in table.items()} for s, table in raw.items()}
    except (AttributeError, TypeError, ValueError):
        raise CiaosrError(f"CMSR table {path}: expected {{scale: {{decode scale: threshold}}}}") from None
    if not tables or not all(tables.values()):
        raise CiaosrError(f"CMSR table {path}: no thresholds")
    return {s: dict(sorted(t.items())) for s, t in sorted(tables.items())}


def save_tables(tables: Tables, path) -> None:
    """Write a table file (replaced whole, never half-written; missing folders are made)."""
    from ..atomic import write_atomic

    def plain(x):
        return int(x) if float(x).is_integer() else float(x)

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            yaml.safe_dump({plain(s): {plain(d): plain(t) for d, t in table.items()} for s, table in tables.items()},
                           f)

    write_atomic(path, write, overwrite=True, make_parents=True)


def levels(tables: Mapping, scale: float) -> tuple[list[float], list[float]]:
    """(decode scales, thresholds with a leading 0) for output scale ``scale``."""
    keys = sorted(tables)
    table = next((tables[k] for k in keys if k >= scale), tables[keys[-1]])
    scales, thresholds = [], [0.0]
    for d in sorted(table):
        if d >= scale:
            break
        scales.append(d)
        thresholds.append(table[d])
    if thresholds[-1] < 1:
        scales.append(scale)
        thresholds.append(1.0)
    return scales, thresholds


def _sample(img: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w) at (1, Q, 2) coordinates, bilinear, border -> (Q, C)."""
    out = F.grid_sample(img, coord.flip(-1).unsqueeze(1).to(img.dtype), mode="bilinear", padding_mode="border",
                        align_corners=False)
    return out[0, :, 0].t()


def _grid_cells(n: int, qh: int, qw: int, factor: float, like: torch.Tensor) -> torch.Tensor:
    cell = torch.ones(1, n, 2, dtype=like.dtype, device=like.device)
    cell[:, :, 0] *= 2 / qh
    cell[:, :, 1] *= 2 / qw
    return cell * factor


def _decode(model, enc, coord, cell, table_cell, clip=True, residual=True, chunk=CHUNK) -> torch.Tensor:
    """(1, Q, 3) predictions with the modulations of ``table_cell``, in chunks."""
    parts = []
    for a in range(0, coord.shape[1], chunk):
        c, cl = coord[:, a:a + chunk], cell[:, a:a + chunk]
        if residual:
            parts.append(model.decode(enc, c, cl, table_cell=table_cell, clip=clip))
        else:
            parts.append(model.decoder.query(enc.prepared, c, cl, table_cell=table_cell, clip=clip))
    return torch.cat(parts, dim=1)


def cmsr_predict(model, enc, size: tuple[int, int], tables: Mapping, chunk: int = CHUNK) -> torch.Tensor:
    """One encoded image (batch 1) -> its (1, H*W, 3) normalised prediction on the whole
    H x W output grid, with CMSR past the training range."""
    check_model(model)
    if enc.feat.shape[0] != 1:
        raise CiaosrError("CMSR renders one image at a time")
    (big_h, big_w), (h, w) = size, enc.feat.shape[-2:]
    device = enc.feat.device
    qn = big_h * big_w
    coord = make_coord(size, device).unsqueeze(0)
    cell = make_cell(size, qn, device).unsqueeze(0)
    limit = model.decoder.max_train_scale
    if limit is None or qn <= limit ** 2 * h * w:
        return model.decode_chunked(enc, coord, cell, chunk)
    table_cell = cell[:, :1]
    means = model.decoder.shift_means(enc.prepared, table_cell)
    scale = math.sqrt(qn / h / w)
    scales, thresholds = levels(tables, scale)
    centres = feature_coord(enc.feat)[:1]
    first = next((i for i, d in enumerate(scales) if d >= 1), len(scales))
    last = len(scales) - 1
    grids, coords, cells = [], [], []
    for i in range(first, len(scales)):
        d = scales[i]
        qh, qw = int(h * d), int(w * d)
        q = F.interpolate(centres, size=(qh, qw), mode="bilinear", align_corners=False)
        q = q.permute(0, 2, 3, 1).reshape(1, qh * qw, 2)
        if i in (first, last):
            m = sample_nearest(means, q).flatten()
            picked = m >= thresholds[i] if i == last else m <= thresholds[i + 1]
        else:
            lo, hi = thresholds[i], thresholds[i + 1]
            picked = sample_nearest((means - (hi + lo) / 2).abs(), q).flatten() <= (hi - lo) / 2
        index = torch.where(picked)[0]
        grids.append((qh, qw, q, index))
        if len(index):
            coords.append(q[:, index])
            cells.append(_grid_cells(len(index), qh, qw, max(d / limit, 1), q))
    if coords:
        pred = _decode(model, enc, torch.cat(coords, dim=1), torch.cat(cells, dim=1), table_cell, chunk=chunk)[0]

    ret, start, last_grid = enc.lr_norm, 0, None
    for qh, qw, q, index in grids:
        if not len(index):
            continue
        up = _sample(ret, q)
        up[index] = pred[start:start + len(index)].to(up.dtype)
        start += len(index)
        ret, last_grid = up.view(1, qh, qw, -1).permute(0, 3, 1, 2), (qh, qw)
    if last_grid != (big_h, big_w):
        return _sample(ret, coord).unsqueeze(0)
    return ret.permute(0, 2, 3, 1).reshape(1, qn, -1)


def cmsr_upsample(model, lr: torch.Tensor, size: tuple[int, int], tables: Mapping, chunk: int = CHUNK,
                  clamp: bool = True) -> torch.Tensor:
    """``model.upsample`` with CMSR: (B, 3, h, w) in [0, 1] -> (B, 3, H, W)."""
    out = []
    for b in range(lr.shape[0]):
        pred = cmsr_predict(model, model.encode(lr[b:b + 1]), size, tables, chunk)
        out.append(model.to_image(pred).view(1, *size, 3).permute(0, 3, 1, 2))
    img = torch.cat(out)
    return img.clamp(0, 1) if clamp else img


def update_table(model, enc, size: tuple[int, int], table: dict, mse: float = DEFAULT_MSE,
                 chunk: int = CHUNK) -> dict:
    """One image's step of the table search (the official ``update_scale2mean``): lowers
    the thresholds of ``table`` ({decode scale: threshold}, in place) for this encoded
    image (batch 1) and its H x W output."""
    check_model(model)
    dec = model.decoder
    (big_h, big_w), (h, w) = size, enc.feat.shape[-2:]
    device = enc.feat.device
    qn = big_h * big_w
    coord = make_coord(size, device).unsqueeze(0)
    cell = make_cell(size, qn, device).unsqueeze(0)
    table_cell = cell[:, :1]
    residual = dec.cmsr_search_residual and model.residual
    best_pred = _decode(model, enc, coord, cell, table_cell, residual=residual, chunk=chunk)[0]
    means = sample_nearest(dec.shift_means(enc.prepared, table_cell), coord).flatten()
    top = dec.cmsr_search_max
    samples = [top * i / 100 for i in range(101)]
    out_scale = math.sqrt(qn / h / w)
    for d in list(table):
        if d >= out_scale:
            break
        qh, qw = int(h * d), int(w * d)
        q = make_coord((qh, qw), device).unsqueeze(0)
        q_pred = _decode(model, enc, q, _grid_cells(qh * qw, qh, qw, 1, q), table_cell, clip=False,
                         residual=residual, chunk=chunk)
        pred = _sample(q_pred.view(1, qh, qw, -1).permute(0, 3, 1, 2), coord)
        found = table[d]
        for mid in list(samples):
            sel = torch.where((means - mid).abs() <= 0.001)[0]
            if not len(sel):
                continue
            if F.mse_loss(pred[sel], best_pred[sel]) <= mse:
                samples.remove(mid)
                found = mid
            else:
                break
        _lower(table, d, min(found, table[d]))
    if samples:
        _lower(table, out_scale, samples[-1])
    return table


def _lower(table: dict, scale: float, value: float) -> None:
    """``table[scale] = value`` and no lower decode scale above it."""
    table[scale] = value
    for s in table:
        if s < scale and table[s] > value:
            table[s] = value


def build_tables(model, images: Iterable[torch.Tensor], scale: float, mse: float = DEFAULT_MSE,
                 tables: Tables | None = None, chunk: int = CHUNK) -> Tables:
    """The official ``init_cmsr.py`` at one output scale: ``images`` uint8 (3, H, W) HR
    images, each made a LIIF-rule pair (PIL bicubic LR, HR cropped); the table of
    ``scale`` in ``tables`` (a new one from 1 at :data:`TABLE_SCALES` up to ``scale``) is
    searched on them; returns all the tables, the new one in place."""
    check_model(model)
    tables = dict(tables or {})
    table = tables.setdefault(float(scale), {float(d): 1.0 for d in TABLE_SCALES if d <= scale})
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for hr in images:
                hr, lr = on_the_fly_pair(hr, scale)
                lr = lr.to(next(model.parameters()).device, torch.float32).unsqueeze(0) / 255
                update_table(model, model.encode(lr), tuple(hr.shape[-2:]), table, mse, chunk)
    finally:
        model.train(was_training)
    return {s: tables[s] for s in sorted(tables)}

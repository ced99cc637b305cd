"""Training configuration: YAML files checked against one schema of defaults.

Every key a config may set is in ``DEFAULTS``; a key that is not there is an error
(a typo must not silently fall back to a default). ``--set a.b=value`` overrides one
key, the value read as YAML (``--set train.iterations=500``, ``--set data.scales=[2,3]``).
Keys under ``model.encoder_args``, ``model.decoder_args`` are free-form: they are
passed to the model constructors, which check them; so are ``data.degradation_args``
(to the degradations) and ``losses.perceptual_layers`` (VGG19 layer -> weight).

A config file may hold ``stages:``, a list of partial configs run one after the other,
each on top of the rest of the file (``load_stages``); a stage's ``init.checkpoint:
previous`` starts it from the weights the stage before exported.

Old names are still read (``upgrade``): ``train.amp: none|bf16|fp16``, in configs and
training states written before ``train.precision``, means ``train.precision:
fp32|bf16|fp16``.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from ..errors import CiaosrError
from ..data.train_dataset import RECIPES
from ..geometry import downscaled_size
from ..options import DATA_ROOT_VARIABLE, default_data_root
from ..runtime import PRECISIONS, Precision

# How to point a run at its data, for the errors that find none.
DATA_ROOT_HINT = (f"set data_root in the config, --set data_root=DIR, or {DATA_ROOT_VARIABLE}; "
                  "'ciaosr data fetch NAME' puts the paper's sets in ./datasets")


# Sections whose contents are passed through unchecked (constructor arguments).
FREE_FORM = {"model.encoder_args", "model.decoder_args", "data.degradation_args", "losses.perceptual_layers"}

DEFAULTS: dict[str, Any] = {
    "name": None,  # run name; default: the config file's stem
    "output_dir": "runs",  # run folder = <output_dir>/<name>
    "data_root": None,  # data paths below are relative to this; null: default_data_root()
    "seed": 0,
    "device": "auto",  # auto, cpu, cuda (under torchrun: cuda:<LOCAL_RANK>)
    "threads": None,  # CPU threads per process (torch.set_num_threads); null: PyTorch's default
    "model": {
        "name": "edsr-baseline-ciaosr",
        "encoder_args": {},
        "decoder_args": {},
    },
    "init": {
        "checkpoint": None,  # weights to start from: our .safetensors, an official checkpoint, a state file
        "parts": ["all"],  # any of: all, encoder, decoder
    },
    "freeze_encoder": False,
    "data": {
        "train": ["DIV2K-mini/HR"],  # folders of HR images
        "scale_min": 1.0,
        "scale_max": 4.0,
        "scales": None,  # a discrete set instead, e.g. [2, 3, 4]
        "lr_patch": 48,
        "num_queries": 2304,
        "augment": True,
        "cache": True,  # keep decoded images in memory
        "num_workers": 4,
        "pipeline": "bicubic",  # bicubic (the benchmark recipe) or realworld (degraded LR, docs/real-world.md)
        # bicubic only: whose official sampling to follow, liif or mmedit (CiaoSR's);
        # auto: the model family's own (mmedit for CiaoSR, liif for the others)
        "recipe": "auto",
        "target_upscale": 1,  # bicubic only: targets from the HR crop enlarged this many times (OPE-SR's 3)
        # realworld only:
        "gt_size": 256,  # GT crop side, degraded to round(gt_size / s) pixels, then an lr_patch crop
        "query_window": None,  # side of a contiguous block of queries (perceptual / GAN); null: num_queries scattered
        "sharpen": True,  # unsharp-mask the GT: the LR is degraded from it, and it is the L1 / perceptual target
        "degradation": "realesrgan",  # realesrgan or bsrgan
        "degradation_args": {},  # settings of the degradations (ciaosr.data.degradations)
        "degrade_per_sample": True,  # one call and generator per sample (any world size: the same samples); false: per batch, faster
    },
    "losses": {  # weights of the generator's losses; perceptual and gan need data.pipeline realworld
        "pixel": 1.0,  # L1
        "perceptual": 0.0,  # VGG19 features (torchvision's vgg19-dcbb9e9d.pth)
        "perceptual_layers": {2: 0.1, 7: 0.1, 16: 1.0, 25: 1.0, 34: 1.0},  # vgg19.features index -> weight
        "gan": 0.0,  # vanilla GAN with a U-Net discriminator
        "vgg_weights": None,  # path of vgg19-dcbb9e9d.pth; null: <torch hub dir>/checkpoints/
    },
    "discriminator": {  # used when losses.gan > 0
        "channels": 64,
        "skip": True,
        "lr": 1.0e-4,
        "betas": [0.9, 0.99],
    },
    "train": {
        "batch_size": 16,  # per process; effective batch = batch_size x world size
        "iterations": 1_000_000,
        "max_minutes": None,  # stop after this many minutes (validate, save, export), resumable; null: no limit
        "precision": "fp32",  # fp32, bf16, fp16 (autocast; fp16: GPU only, with a GradScaler); auto: bf16 where native
        "grad_clip": None,  # max gradient L2 norm
        "ema_decay": None,  # e.g. 0.999; validation and exported weights then use the EMA
        "compile": False,  # torch.compile the encoder and decoder query (ciaosr.compilation)
        "log_every": 100,
        "save_every": 5000,  # training-state checkpoint period (steps)
        "keep_states": 2,  # how many training states to keep
        "progress": "auto",  # tqdm bar: auto (when a terminal), true, false
    },
    "optimizer": {
        "type": "adam",  # adam or adamw
        "lr": 1.0e-4,
        "betas": [0.9, 0.999],
        "weight_decay": 0.0,
    },
    "scheduler": {
        "type": "step",  # step, multistep, cosine or constant
        "step_size": 200_000,  # step: lr x gamma every step_size iterations
        "milestones": [],  # multistep: lr x gamma at these iterations
        "gamma": 0.5,
        "min_lr": 0.0,  # cosine: the learning rate at the end (of train.iterations or train.max_minutes)
        "warmup_iterations": 0,  # cosine: a linear rise over this many iterations first
        "warmup_factor": 0.1,  # ... from this fraction of optimizer.lr
    },
    "val": {
        "every": 0,  # validation period in steps; 0: only at the end; null: never
        "datasets": [],  # under data_root: benchmark sets (<set>/HR) or folders of HR images
        "scales": [4],
        "protocol": "liif",
        "max_images": None,  # the first N images of each set
        "chunk": 30000,
    },
}

CHOICES = {
    "train.precision": ("auto", *PRECISIONS),
    "data.pipeline": ("bicubic", "realworld"),
    "data.recipe": ("auto",) + RECIPES,
    "data.degradation": ("realesrgan", "bsrgan"),
    "optimizer.type": ("adam", "adamw"),
    "scheduler.type": ("step", "multistep", "cosine", "constant"),
    "val.protocol": ("liif", "mmedit"),
    "init.parts": ("all", "encoder", "decoder"),
    "train.progress": ("auto", True, False),
}


def _kind(default) -> str | None:
    if isinstance(default, bool):
        return "bool"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, str):
        return "str"
    if isinstance(default, list):
        return "list"
    if isinstance(default, dict):
        return "dict"
    return None  # None default: anything (checked where used)


# Keys whose values are checked against CHOICES only (mixed types).
UNTYPED = {"train.progress"}
# Keys that are a number or null (YAML reads '1e-6', without a dot, as a string).
OPTIONAL_NUMBERS = {"train.max_minutes", "train.grad_clip", "train.ema_decay"}
# Keys that are an integer or null.
OPTIONAL_INTEGERS = {"data.query_window"}


def _coerce(key: str, value, default):
    """``value`` checked against the type of ``default`` (YAML gives '1e-4' as a string)."""
    kind = None if key in UNTYPED else _kind(default)
    if key in OPTIONAL_NUMBERS and isinstance(value, str):
        kind = "float"
    if key in OPTIONAL_INTEGERS:
        kind = "int"
    if value is None or kind is None:
        return value
    if kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "float":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind == "str":
        if isinstance(value, str):
            return value
    elif kind == "list":
        if isinstance(value, (list, tuple)):
            return list(value)
        if key in ("data.train", "val.datasets", "init.parts") and isinstance(value, str):
            return [value]
    elif kind == "dict":
        if isinstance(value, dict):
            return value
    names = {"bool": "true or false", "int": "an integer", "float": "a number", "str": "a string",
             "list": "a list", "dict": "a mapping"}
    raise CiaosrError(f"config key '{key}' must be {names[kind]}, got {value!r}")


def _merge(base: dict, update: dict, prefix: str, source: str) -> None:
    for key, value in update.items():
        if not isinstance(key, str):
            raise CiaosrError(f"{source}: config keys must be strings, got {key!r}")
        path = f"{prefix}{key}"
        if key not in base:
            raise CiaosrError(f"{source}: unknown config key '{path}'{_suggest(base, key, prefix)}")
        default = base[key]
        if isinstance(default, dict) and path not in FREE_FORM:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise CiaosrError(f"{source}: config key '{path}' must be a mapping, got {value!r}")
            _merge(default, value, path + ".", source)
        elif path in FREE_FORM:
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise CiaosrError(f"{source}: config key '{path}' must be a mapping, got {value!r}")
            base[key] = dict(value)
        else:
            try:
                base[key] = _coerce(path, value, DEFAULT_LOOKUP.get(path, default))
            except CiaosrError as exc:
                raise CiaosrError(f"{source}: {exc}") from None


def _suggest(section: dict, key: str, prefix: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, [k for k in section], n=1)
    return f" (did you mean '{prefix}{close[0]}'?)" if close else ""


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out[f"{prefix}{k}"] = v
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
    return out


DEFAULT_LOOKUP = _flatten(DEFAULTS)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``'train.lr=1e-3'`` -> (['train', 'lr'], 0.001)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise CiaosrError(f"--set needs KEY=VALUE, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        why = str(getattr(exc, "problem", None) or "syntax error")
        raise CiaosrError(f"--set {key}: the value {raw!r} is not valid YAML ({why}); "
                          f"quote a plain string, e.g. --set '{key}=\"{raw}\"'") from None
    return key.split("."), value


def _nest(parts: list[str], value) -> dict:
    out: Any = value
    for p in reversed(parts):
        out = {p: out}
    return out


def upgrade(data: dict, source: str = "config") -> dict:
    """A parsed config (or part of one) with the old key ``train.amp`` (none, bf16, fp16)
    renamed to ``train.precision`` (fp32, bf16, fp16); other keys are left as they are."""
    train = data.get("train") if isinstance(data, dict) else None
    if not isinstance(train, dict) or "amp" not in train:
        return data
    if "precision" in train:
        raise CiaosrError(f"{source}: give train.precision only (train.amp is its old name)")
    train = dict(train)
    amp = train.pop("amp")
    try:
        train["precision"] = Precision.parse(amp).value
    except CiaosrError:
        train["precision"] = amp  # validate() reports it as a bad train.precision
    return {**data, "train": train}


def read_yaml(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CiaosrError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise CiaosrError(f"{path}: not valid YAML ({first})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise CiaosrError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    return data


def build_config(data: dict | None, overrides: Sequence[str] = (), *, source: str = "config",
                 default_name: str | None = None) -> dict:
    """Defaults, then ``data`` (a parsed YAML mapping), then ``--set`` overrides; checked."""
    cfg = copy.deepcopy(DEFAULTS)
    _merge(cfg, upgrade(data or {}, source), "", source)
    for text in overrides:
        parts, value = parse_override(text)
        if len(parts) > 2 and ".".join(parts[:2]) in FREE_FORM:
            # One constructor argument: set it, keep the others.
            node = cfg[parts[0]].setdefault(parts[1], {})
            for p in parts[2:-1]:
                if not isinstance(node.get(p), dict):
                    node[p] = {}
                node = node[p]
            node[parts[-1]] = value
            continue
        _merge(cfg, upgrade(_nest(parts, value), "--set"), "", "--set")
    if not cfg["name"]:
        cfg["name"] = default_name or "run"
    if cfg["data_root"] is None:
        cfg["data_root"] = default_data_root()
    validate(cfg)
    return cfg


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> dict:
    """The config of a file of one stage (a file with ``stages:``: ``load_stages``)."""
    if "stages" in read_yaml(path):
        raise CiaosrError(f"{path} has stages: read it with load_stages")
    return load_stages(path, overrides)[0]


PREVIOUS = "previous"  # init.checkpoint of a stage: the weights the stage before exported


def load_stages(path: str | Path, overrides: Sequence[str] = ()) -> list[dict]:
    """The configs of a file, one per stage, in order: a file without ``stages:`` is one
    stage. Each entry of ``stages:`` is a partial config merged over the rest of the
    file (mappings key by key), then ``--set`` overrides; its run name defaults to
    ``<file stem>-<n>``. ``init.checkpoint: previous`` becomes the previous stage's
    exported ``last`` weights (the two stages must build the same model)."""
    from ..checkpoints.loader import TRAINING_EXPORTS

    path = Path(path)
    data = read_yaml(path)
    stages = data.pop("stages", None)
    if stages is None:
        cfg = build_config(data, overrides, source=str(path), default_name=path.stem)
        if cfg["init"]["checkpoint"] == PREVIOUS:
            raise CiaosrError(f"{path}: init.checkpoint: {PREVIOUS} is for a stage of a config with stages:")
        return [cfg]
    if not isinstance(stages, list) or not stages or not all(isinstance(st, dict) for st in stages):
        raise CiaosrError(f"{path}: 'stages' must be a list of partial configs (mappings)")
    configs: list[dict] = []
    for i, stage in enumerate(stages, 1):
        source = f"{path} stage {i}"
        if "stages" in stage:
            raise CiaosrError(f"{source}: a stage cannot hold stages")
        cfg = build_config(_deep_merge(data, stage), overrides, source=source, default_name=f"{path.stem}-{i}")
        if cfg["init"]["checkpoint"] == PREVIOUS:
            if not configs:
                raise CiaosrError(f"{source}: init.checkpoint: {PREVIOUS}, but it is the first stage")
            prev = configs[-1]
            if prev["model"] != cfg["model"]:
                raise CiaosrError(f"{source} starts from the previous stage's weights, so it must build the "
                                  f"same model (its model section differs)")
            cfg["init"]["checkpoint"] = str(Path(prev["output_dir"]) / prev["name"] / TRAINING_EXPORTS[1])
        if any((c["output_dir"], c["name"]) == (cfg["output_dir"], cfg["name"]) for c in configs):
            raise CiaosrError(f"{source}: two stages share the run folder {Path(cfg['output_dir']) / cfg['name']}")
        configs.append(cfg)
    return configs


def _deep_merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _positive(cfg: dict, key: str, allow_zero: bool = False, allow_none: bool = False) -> None:
    value = get(cfg, key)
    if value is None and allow_none:
        return
    ok = isinstance(value, (int, float)) and math.isfinite(value) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "a number >= 0" if allow_zero else "a positive number"
        raise CiaosrError(f"config key '{key}' must be {what}, got {value!r}")


def get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def validate(cfg: dict) -> None:
    """Value checks that do not touch the file system."""
    for key, allowed in CHOICES.items():
        value = get(cfg, key)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if v not in allowed:
                shown = ", ".join(str(a).lower() for a in allowed)
                raise CiaosrError(f"config key '{key}' must be one of {shown}, got {v!r}")
    if not isinstance(cfg["data_root"], str) or not cfg["data_root"]:
        raise CiaosrError(f"config key 'data_root' must be a folder, got {cfg['data_root']!r}")
    if not isinstance(cfg["name"], str) or not cfg["name"] or "/" in cfg["name"]:
        raise CiaosrError(f"config key 'name' must be a run name without '/', got {cfg['name']!r}")
    ckpt = cfg["init"]["checkpoint"]
    if ckpt is not None and not isinstance(ckpt, str):
        raise CiaosrError(f"config key 'init.checkpoint' must be a path, got {ckpt!r}")
    scales = cfg["data"]["scales"]
    if scales is not None and (not isinstance(scales, list) or not scales
                               or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scales)):
        raise CiaosrError(f"config key 'data.scales' must be a list of numbers or null, got {scales!r}")
    if not cfg["init"]["parts"]:
        raise CiaosrError("config key 'init.parts' must not be empty")
    if not isinstance(cfg["seed"], int) or cfg["seed"] < 0:
        raise CiaosrError(f"config key 'seed' must be an integer >= 0, got {cfg['seed']!r}")
    for key in ("train.batch_size", "train.iterations", "train.log_every", "train.save_every",
                "train.keep_states", "data.lr_patch", "optimizer.lr", "val.chunk"):
        _positive(cfg, key)
    for key in ("data.num_workers", "optimizer.weight_decay"):
        _positive(cfg, key, allow_zero=True)
    _positive(cfg, "data.num_queries", allow_none=True)
    threads = cfg["threads"]
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise CiaosrError(f"config key 'threads' must be a positive integer or null, got {threads!r}")
    _positive(cfg, "train.grad_clip", allow_none=True)
    _positive(cfg, "train.max_minutes", allow_none=True)
    _positive(cfg, "scheduler.min_lr", allow_zero=True)
    _positive(cfg, "val.max_images", allow_none=True)
    _positive(cfg, "val.every", allow_zero=True, allow_none=True)
    if not isinstance(cfg["train"]["compile"], bool):
        raise CiaosrError(f"config key 'train.compile' must be true or false, got {cfg['train']['compile']!r}")
    ema = cfg["train"]["ema_decay"]
    if ema is not None and not (isinstance(ema, (int, float)) and 0 < ema < 1):
        raise CiaosrError(f"config key 'train.ema_decay' must be in (0, 1), got {ema!r}")
    sched = cfg["scheduler"]
    if sched["type"] == "step":
        _positive(cfg, "scheduler.step_size")
    if sched["type"] == "multistep" and not sched["milestones"]:
        raise CiaosrError("config key 'scheduler.milestones' must list iterations for a multistep schedule")
    warmup = sched["warmup_iterations"]
    if not isinstance(warmup, int) or isinstance(warmup, bool) or not 0 <= warmup < cfg["train"]["iterations"]:
        raise CiaosrError("config key 'scheduler.warmup_iterations' must be a whole number from 0 to below "
                          f"train.iterations, got {warmup!r}")
    if warmup and sched["type"] != "cosine":
        raise CiaosrError(f"config key 'scheduler.warmup_iterations' works with the cosine schedule only, "
                          f"not {sched['type']}")
    factor = sched["warmup_factor"]
    if not isinstance(factor, (int, float)) or isinstance(factor, bool) or not 0 <= factor <= 1:
        raise CiaosrError(f"config key 'scheduler.warmup_factor' must be in [0, 1], got {factor!r}")
    if not isinstance(sched["gamma"], (int, float)) or not 0 < sched["gamma"] <= 1:
        raise CiaosrError(f"config key 'scheduler.gamma' must be in (0, 1], got {sched['gamma']!r}")
    _check_betas("optimizer.betas", cfg["optimizer"]["betas"])
    if not cfg["data"]["train"]:
        raise CiaosrError("config key 'data.train' must list at least one folder of HR images")
    for key in ("data.train", "val.datasets"):
        for item in get(cfg, key):
            if not isinstance(item, str) or not item:
                raise CiaosrError(f"config key '{key}' must list folder names, got {item!r}")
    if cfg["val"]["datasets"]:
        for s in cfg["val"]["scales"]:
            if not isinstance(s, (int, float)) or not math.isfinite(s) or s <= 1:
                raise CiaosrError(f"config key 'val.scales' must hold scales above 1, got {s!r}")
    if str(cfg["device"]).startswith("cpu"):  # other devices: checked once resolved (Trainer)
        Precision.for_device(cfg["train"]["precision"], torch.device("cpu"))
    up = cfg["data"]["target_upscale"]
    if isinstance(up, bool) or not isinstance(up, int) or up < 1:
        raise CiaosrError(f"config key 'data.target_upscale' must be a whole number >= 1, got {up!r}")
    if up != 1 and cfg["data"]["pipeline"] != "bicubic":
        raise CiaosrError("config key 'data.target_upscale' works with data.pipeline bicubic only")
    if cfg["data"]["pipeline"] == "realworld" and cfg["data"]["recipe"] != "auto":
        raise CiaosrError(f"config key 'data.recipe' ({cfg['data']['recipe']}) chooses how bicubic samples are "
                          f"made; data.pipeline realworld makes its own: remove data.recipe or use data.pipeline bicubic")
    _validate_realworld(cfg)


def _validate_realworld(cfg: dict) -> None:
    """The real-world pipeline's keys, the losses and the discriminator."""
    from .vgg import min_input_side, vgg19_layer_count

    data, losses = cfg["data"], cfg["losses"]
    for key in ("losses.pixel", "losses.perceptual", "losses.gan"):
        _positive(cfg, key, allow_zero=True)
    if losses["pixel"] + losses["perceptual"] + losses["gan"] <= 0:
        raise CiaosrError("the losses are all zero: give losses.pixel, losses.perceptual or losses.gan a weight")
    layers = {}
    for k, v in (losses["perceptual_layers"] or {}).items():
        try:
            n = int(k)
        except (TypeError, ValueError):
            n = -1
        if not 0 <= n < vgg19_layer_count() or not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0:
            raise CiaosrError(f"config key 'losses.perceptual_layers' maps vgg19.features layers "
                              f"(0..{vgg19_layer_count() - 1}) to weights >= 0, got {k!r}: {v!r}")
        layers[n] = float(v)
    losses["perceptual_layers"] = dict(sorted(layers.items()))
    if losses["perceptual"] > 0 and not any(layers.values()):
        raise CiaosrError("losses.perceptual needs at least one layer of weight > 0 in losses.perceptual_layers")
    vgg = losses["vgg_weights"]
    if vgg is not None and (not isinstance(vgg, str) or not vgg):
        raise CiaosrError(f"config key 'losses.vgg_weights' must be a file path or null, got {vgg!r}")
    window = data["query_window"]
    if data["pipeline"] != "realworld":
        if losses["perceptual"] > 0 or losses["gan"] > 0:
            raise CiaosrError("losses.perceptual and losses.gan need data.pipeline: realworld")
        if window is not None:
            raise CiaosrError("data.query_window needs data.pipeline: realworld")
        return
    _positive(cfg, "data.gt_size")
    p = data["lr_patch"]
    s_max = max(data["scales"]) if data["scales"] else data["scale_max"]
    smallest = downscaled_size((data["gt_size"], data["gt_size"]), s_max)[0]
    if smallest < p:
        raise CiaosrError(f"data.gt_size {data['gt_size']} degraded at scale {s_max:g} gives an LR of "
                          f"{smallest} pixels, smaller than data.lr_patch {p}")
    if window is None:
        if losses["perceptual"] > 0 or losses["gan"] > 0:
            raise CiaosrError("losses.perceptual and losses.gan see images: set data.query_window "
                              "(the side of a block of queries, e.g. 64)")
        if data["num_queries"] > p * p:
            raise CiaosrError(f"data.num_queries must be at most data.lr_patch^2 = {p * p} "
                              f"(the GT pixels of an LR patch at scale 1), got {data['num_queries']}")
    else:
        if window < 1 or window > p:
            raise CiaosrError(f"data.query_window must be in 1..data.lr_patch ({p}): every GT window, "
                              f"round(lr_patch x s) >= lr_patch pixels, must hold it; got {window}")
        if losses["gan"] > 0 and window % 8:
            raise CiaosrError(f"the U-Net discriminator needs data.query_window to be a multiple of 8, got {window}")
        used = [n for n, w in layers.items() if w > 0]
        need = min_input_side(max(used)) if losses["perceptual"] > 0 and used else 1
        if window < need:
            raise CiaosrError(f"data.query_window {window} is too small for VGG19 layer {max(used)} "
                              f"(it needs at least {need})")
    dcfg = cfg["discriminator"]
    if not isinstance(dcfg["channels"], int) or dcfg["channels"] < 1:
        raise CiaosrError(f"config key 'discriminator.channels' must be a positive integer, got {dcfg['channels']!r}")
    _positive(cfg, "discriminator.lr")
    _check_betas("discriminator.betas", dcfg["betas"])


def _check_betas(key: str, betas) -> None:
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and 0 <= b < 1 for b in betas):
        raise CiaosrError(f"config key '{key}' must be two numbers in [0, 1), got {betas!r}")


def dump_config(cfg: dict) -> str:
    return yaml.safe_dump(cfg, sort_keys=False, default_flow_style=None)

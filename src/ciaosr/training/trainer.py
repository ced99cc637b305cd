"""The training loop: L1 on sampled query pixels, Adam, step schedule; resumable to the step.
With ``data.pipeline: realworld``, degraded LR inputs and, when ``losses`` ask for them,
the perceptual and GAN losses with a U-Net discriminator (docs/real-world.md).

``Trainer(cfg, resume=...)`` checks everything that can be wrong with a run (config
values, data folders, validation sets, initial weights, the resume state, the run
folder) in its constructor, before any process group, file or training step exists.
``run()`` then trains. A stop signal saves the state of the last finished step at once,
abandoning the step in progress, and leaves that step's validation and export to the
resume (stopping.py; docs/training.md, "Stopping and resuming").

Determinism: sample ``k`` of the data stream depends only on ``(seed, k)``; before each
step the torch RNG (drop-path in SwinIR) is re-seeded from ``(seed, step, rank)``. With
the weights, optimiser, scheduler, EMA and GradScaler restored from a state, a resumed
run therefore repeats the uninterrupted one exactly on CPU (and up to the GPU kernels'
own non-determinism on GPU).
"""

from __future__ import annotations

import json
import math
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..atomic import check_output_folder
from ..checkpoints.native import save_checkpoint
from ..data.realworld import RealWorldBatcher, RealWorldDataset, RealWorldOps, default_ops
from ..data.train_dataset import SRTrainDataset, StreamSampler, recipe_for_decoder
from ..distributed import (DistInfo, barrier, cleanup, device_for, dist_info_from_env, init_process_group,
                           max_int, mean_scalar)
from ..errors import CiaosrError
from ..models.factory import build_model
from ..models.registry import split_name
from ..runtime import PRECISIONS, Precision
from . import checkpointing as ckpt
from .config import DATA_ROOT_HINT, dump_config, upgrade
from .schedule import make_optimizer, make_scheduler
from .discriminator import UNetDiscriminatorSN
from .losses import PerceptualLoss
from .step import Adversary, optimisation_step, realworld_step
from .stopping import StopSignals, Stopped
from .vgg import find_vgg_weights
from .ema import EMA
from .logging import RunLogger
from .validation import Validator

# Config keys that may change between an interrupted run and its resume without a warning.
RESUME_FREE_KEYS = ("name", "output_dir", "data_root", "device", "threads", "data.num_workers", "data.cache",
                    "train.iterations", "train.max_minutes", "train.log_every", "train.save_every",
                    "train.keep_states", "train.progress", "val.", "init.", "losses.vgg_weights")


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    interrupted: int | None = None  # the signal that stopped the run, if any
    last_loss: float | None = None
    best_psnr: float | None = None
    timed_out: bool = False  # stopped by train.max_minutes before train.iterations


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and not k.endswith("_args"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _quiet_worker(_worker_id: int) -> None:
    """DataLoader workers leave SIGINT/SIGTERM to the main process, which saves a state
    and then shuts them down (a Ctrl-C reaches every process of the terminal's process
    group; a worker dying of it would abort the save)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


# Why a run stops before train.iterations, agreed between processes (the largest wins).
_GO, _OUT_OF_TIME, _SIGNALLED = 0, 1, 2


def _step_seed(seed: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, 0x57E9, step, rank]).generate_state(1, np.uint64)[0] >> 1)


def training_device(requested: str | None, info: DistInfo) -> torch.device:
    """cpu or cuda only: ``auto`` is this process's GPU if there is one, else the CPU
    (never MPS); under torchrun each process takes ``cuda:<LOCAL_RANK>``."""
    return device_for(requested, info, allowed=("cpu", "cuda"), purpose="training")


class Trainer:
    def __init__(self, cfg: dict, *, resume: str | bool | None = None,
                 step_callback: Callable[["Trainer", int], None] | None = None,
                 dist_info: DistInfo | None = None, realworld_ops: RealWorldOps | None = None,
                 exit_on_signal: bool = False, stop_note: str | None = None):
        """``realworld_ops``: the degradation and sharpening of ``data.pipeline:
        realworld`` (default: ``data.realworld.default_ops``, the project's own).
        ``exit_on_signal``: a SIGINT / SIGTERM ends the process (status 128 + the signal)
        as soon as the state is saved, without waiting for the step in progress (the
        command line's choice; a Python caller otherwise gets the ``TrainResult`` once
        the main thread is back from that step). ``stop_note``: a last line for a stop."""
        self.cfg = cfg
        self.info = dist_info or dist_info_from_env()
        self.step_callback = step_callback
        self.exit_on_signal, self.stop_note = exit_on_signal, stop_note
        self.clock = time.monotonic  # the time budget's clock (train.max_minutes)
        self._warnings: list[str] = []
        tcfg, dcfg = cfg["train"], cfg["data"]

        self.device = training_device(cfg["device"], self.info)

        self.data_root = Path(cfg["data_root"]).expanduser()
        self.run_dir = Path(cfg["output_dir"]).expanduser() / cfg["name"]
        check_output_folder(self.run_dir)  # made (with output_dir) when the run starts

        # Data: folders exist and hold images; images too small are skipped (warned).
        for folder in dcfg["train"]:
            if not (self.data_root / folder).exists():
                raise CiaosrError(f"training folder not found: {self.data_root / folder} ({DATA_ROOT_HINT})")
        folders = [self.data_root / f for f in dcfg["train"]]
        self.batcher = None
        if dcfg["pipeline"] == "realworld":
            self.dataset = RealWorldDataset(
                folders, seed=cfg["seed"], gt_size=dcfg["gt_size"], scale_min=dcfg["scale_min"],
                scale_max=dcfg["scale_max"], scales=dcfg["scales"], augment=dcfg["augment"], cache=False,
                warn=self._warnings.append)
            ops = realworld_ops or default_ops(dcfg["degradation"], dcfg["degradation_args"])
            window = dcfg["query_window"]
            self.batcher = RealWorldBatcher(ops, lr_patch=dcfg["lr_patch"], window=window,
                                            num_queries=None if window else dcfg["num_queries"],
                                            sharpen=dcfg["sharpen"], per_sample=dcfg["degrade_per_sample"])
        else:
            self.recipe = dcfg["recipe"]
            if self.recipe == "auto":
                self.recipe = recipe_for_decoder(split_name(cfg["model"]["name"])[1].name)
            self.dataset = SRTrainDataset(
                folders, seed=cfg["seed"], scale_min=dcfg["scale_min"],
                scale_max=dcfg["scale_max"], scales=dcfg["scales"], lr_patch=dcfg["lr_patch"],
                num_queries=dcfg["num_queries"], augment=dcfg["augment"], recipe=self.recipe, cache=False,
                warn=self._warnings.append, target_upscale=dcfg["target_upscale"])
        lcfg = cfg["losses"]
        self.loss_weights = {k: float(lcfg[k]) for k in ("pixel", "perceptual", "gan")}
        self.perceptual = None
        if lcfg["perceptual"] > 0:  # the VGG19 file is found and read now, before any work
            self.perceptual = PerceptualLoss(lcfg["perceptual_layers"], find_vgg_weights(lcfg["vgg_weights"]))
        vcfg = cfg["val"]
        self.validator = None
        if vcfg["datasets"] and vcfg["every"] is not None:
            self.validator = Validator(self.data_root, vcfg["datasets"], vcfg["scales"], protocol=vcfg["protocol"],
                                       max_images=vcfg["max_images"], chunk=vcfg["chunk"])

        # Resume state: found, readable, and of this very model.
        self.resume_path = ckpt.resolve_resume(resume, self.run_dir)
        self.state = ckpt.load_state(self.resume_path) if self.resume_path else None
        if self.state is None and ckpt.list_states(self.run_dir):
            raise CiaosrError(f"run folder {self.run_dir} already holds training states: continue it with --resume, "
                              f"or start a new run with --set name=OTHER")
        self.precision, self._precision_note = self._resolve_precision()

        init_ckpt = cfg["init"]["checkpoint"]
        if init_ckpt and not self.state:
            p = Path(init_ckpt).expanduser()
            if p.exists():
                init_ckpt = str(p)
            elif "/" in init_ckpt or p.suffix:
                raise CiaosrError(f"init.checkpoint not found: {init_ckpt}")

        # The model (seeded, so every process builds the same weights).
        torch.manual_seed(cfg["seed"])
        mcfg = cfg["model"]
        self.model = build_model(mcfg["name"], mcfg["encoder_args"], mcfg["decoder_args"])
        # The discriminator (losses.gan > 0), seeded after the model.
        self.discriminator = None
        if self.loss_weights["gan"] > 0:
            d = cfg["discriminator"]
            self.discriminator = UNetDiscriminatorSN(3, d["channels"], d["skip"])
        if self.state is not None:
            ckpt.check_state_matches(self.state, self.model.spec, str(self.resume_path))
            if self.discriminator is not None and not self.state.get("discriminator"):
                raise CiaosrError(f"cannot resume from {self.resume_path} with losses.gan > 0: it holds no "
                                  f"discriminator (a run without the GAN loss); start a new run from its "
                                  f"weights with init.checkpoint")
            self._compare_configs()
        elif init_ckpt:
            ckpt.load_init_weights(self.model, init_ckpt, cfg["init"]["parts"])
        if cfg["freeze_encoder"]:
            for p in self.model.encoder.parameters():
                p.requires_grad_(False)
        self.trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not self.trainable:
            raise CiaosrError("nothing to train: every parameter is frozen")
        if dcfg["cache"]:
            self.dataset.enable_cache()

    # ------------------------------------------------------------------------
    def _saved_config(self) -> dict:
        """The config the resume state was written with ({} if unreadable)."""
        try:
            import yaml

            return upgrade(yaml.safe_load(self.state.get("config", "")) or {})
        except Exception:
            return {}

    def _resolve_precision(self) -> tuple[Precision, str | None]:
        """``train.precision``, checked for the device, and what ``auto`` was resolved
        by (None if not asked). ``auto`` is the resume state's precision (the state's
        config holds the resolved name), else bf16 where the GPU or CPU computes it
        natively and fp32 elsewhere. The resolved name replaces ``auto`` in the config,
        so the run folder's config.yaml and every state record it."""
        tcfg = self.cfg["train"]
        asked, note = tcfg["precision"], None
        if asked != "auto":
            return Precision.for_device(asked, self.device), None
        saved = self._saved_config().get("train", {}).get("precision") if self.state is not None else None
        if saved in PRECISIONS:
            asked, note = saved, "the resumed state's precision"
        precision = Precision.for_device(asked, self.device)
        if note is None:
            where = "GPU" if self.device.type == "cuda" else "CPU"
            note = f"{'native' if precision is Precision.BF16 else 'no native'} bf16 on this {where}"
        tcfg["precision"] = precision.value
        return precision, note

    def _compare_configs(self) -> None:
        old = self._saved_config()
        if not old:
            return
        a, b = _flat(old), _flat(self.cfg)
        changed = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
                   and not any(k == f or (f.endswith(".") and k.startswith(f)) for f in RESUME_FREE_KEYS)]
        if changed:
            self._warnings.append(f"resuming with a config that differs from the saved one in: {', '.join(changed)} "
                                  f"(the run will not repeat an uninterrupted one exactly)")

    def _make_optimizer(self):
        return make_optimizer(self.trainable, self.cfg["optimizer"])

    def _make_adversary(self, dev: torch.device) -> Adversary | None:
        """The discriminator on ``dev`` (DDP-wrapped under torchrun) and its Adam."""
        if self.discriminator is None:
            return None
        d = self.discriminator.to(dev)
        net = d
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(d, device_ids=[dev.index] if dev.type == "cuda" else None)
        dcfg = self.cfg["discriminator"]
        return Adversary(net, d, torch.optim.Adam(d.parameters(), lr=dcfg["lr"], betas=tuple(dcfg["betas"])))

    def _export_model(self):
        return self.ema.model if self.ema is not None else self.model

    # ------------------------------------------------------------------------
    def run(self) -> TrainResult:
        init_process_group(self.info, self.device)
        ok = False
        threads = torch.get_num_threads()
        if self.cfg["threads"]:
            torch.set_num_threads(self.cfg["threads"])
        try:
            result = self._run()
            ok = True
            return result
        finally:
            torch.set_num_threads(threads)
            if hasattr(self, "logger"):
                self.logger.close()
            cleanup(self.info, synchronise=ok)

    def _run(self) -> TrainResult:
        info, cfg, dev = self.info, self.cfg, self.device
        tcfg = cfg["train"]
        # The time budget counts from here: moving the model, building the data loader and
        # every step; the validation and exports after the stop come on top.
        t_start = self.clock()
        budget_s = 60.0 * tcfg["max_minutes"] if tcfg["max_minutes"] else None
        time_fraction = (lambda: (self.clock() - t_start) / budget_s) if budget_s else None
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True
        model = self.model.to(dev)
        self.ema = EMA(model, tcfg["ema_decay"]) if tcfg["ema_decay"] else None
        if tcfg["compile"]:  # after the EMA's copy: the shadow stays eager
            from ..compilation import compile_model

            compile_model(model)
        net = model
        if info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        opt = self._make_optimizer()
        sched = make_scheduler(opt, cfg["scheduler"], iterations=int(tcfg["iterations"]), time_fraction=time_fraction)
        scaler = self.precision.grad_scaler()
        perceptual = self.perceptual.to(dev) if self.perceptual is not None else None
        adversary = self._make_adversary(dev)
        sched_d = None
        if adversary is not None:  # the same schedule as the generator's
            sched_d = make_scheduler(adversary.opt, cfg["scheduler"], iterations=int(tcfg["iterations"]),
                                     time_fraction=time_fraction)

        step, samples_seen, best, pending = 0, 0, None, []
        if self.state is not None:
            st = self.state
            model.load_state_dict(st["model"])
            opt.load_state_dict(st["optimizer"])
            sched.load_state_dict(st["scheduler"])
            if self.ema is not None:
                if st.get("ema"):
                    self.ema.load_state_dict(st["ema"])
                else:
                    self.ema.model.load_state_dict(model.state_dict())
            if scaler is not None and st.get("scaler"):
                scaler.load_state_dict(st["scaler"])
            if adversary is not None:
                adversary.model.load_state_dict(st["discriminator"]["weights"])
                adversary.opt.load_state_dict(st["discriminator"]["optimizer"])
                sched_d.load_state_dict(st["discriminator"]["scheduler"])
            step, samples_seen = int(st["step"]), int(st["samples_seen"])
            best = st.get("best_psnr")
            pending = st.get("pending") or []
            if "rng_torch" in st:
                torch.set_rng_state(st["rng_torch"])
            if "rng_cuda" in st and dev.type == "cuda":
                torch.cuda.set_rng_state(st["rng_cuda"], dev)
            prev = (int(st.get("batch_size", tcfg["batch_size"])), int(st.get("world_size", info.world_size)))
            if prev != (tcfg["batch_size"], info.world_size):
                self._warnings.append(f"resuming with batch {tcfg['batch_size']} x {info.world_size} processes "
                                      f"(the state was written with {prev[0]} x {prev[1]})")
            self.state = None  # free the memory

        total = int(tcfg["iterations"])
        self.logger = RunLogger(self.run_dir, total_steps=total, start_step=min(step, total),
                                progress=tcfg["progress"], enabled=info.is_main)
        log = self.logger
        if info.is_main:
            (self.run_dir / "config.yaml").write_text(dump_config(cfg))
        for w in self._warnings:
            log.warn(w)
        if self._precision_note:
            log.info(f"train.precision auto: {self.precision.value} ({self._precision_note})")
        eff = tcfg["batch_size"] * info.world_size
        where = f"resuming {self.resume_path} at step {step}" if self.resume_path else "starting"
        log.info(f"{where}: {cfg['model']['name']} on {dev}"
                 f"{f' x {info.world_size} processes' if info.enabled else ''}, batch {tcfg['batch_size']}"
                 f"{f' per process = {eff}' if info.enabled else ''}, {len(self.dataset)} training images, "
                 f"{total} iterations{f' or {budget_s / 60:g} minutes' if budget_s else ''}, run folder {self.run_dir}")
        if self.batcher is not None:
            w = self.loss_weights
            log.info(f"real-world pipeline ({cfg['data']['degradation']} degradations): losses L1 {w['pixel']:g}, "
                     f"perceptual {w['perceptual']:g}, GAN {w['gan']:g}"
                     f"{', U-Net discriminator' if adversary is not None else ''}")
        else:
            log.info(f"training samples made as the official {self.recipe} code makes them (data.recipe)")

        remaining = max(total - step, 0)
        bs = tcfg["batch_size"]
        loader = DataLoader(
            self.dataset, batch_size=bs,
            sampler=StreamSampler(samples_seen, remaining, bs, info.rank, info.world_size),
            num_workers=cfg["data"]["num_workers"], pin_memory=dev.type == "cuda", drop_last=False,
            worker_init_fn=_quiet_worker if cfg["data"]["num_workers"] > 0 else None,
        )
        clip = tcfg["grad_clip"]
        log_every, save_every = int(tcfg["log_every"]), int(tcfg["save_every"])
        vevery = cfg["val"]["every"]

        loss_sum = torch.zeros((), dtype=torch.float64, device=dev)
        term_sums: dict[str, torch.Tensor] = {}  # the real-world loss terms, when there are several
        n_sum, t_last, last_loss, steps_last = 0, time.time(), None, 0
        realworld_losses = self.loss_weights["perceptual"] > 0 or self.loss_weights["gan"] > 0
        # The steps of the weights last validated and exported: what a stop leaves owing.
        validated_at = None if "validation" in pending else step
        exported_at = None if "export" in pending else step

        def owed() -> list[str]:
            return [what for what, at in (("validation", validated_at if self.validator else step),
                                          ("export", exported_at)) if at != step]

        def save_all(reason: str) -> None:
            nonlocal exported_at
            with stops.commit():
                if info.is_main:
                    state = self._state_dict(step, samples_seen, best, opt, sched, scaler, adversary, sched_d)
                    path = ckpt.save_state(state, ckpt.state_path(self.run_dir, step))
                    ckpt.prune_states(self.run_dir, tcfg["keep_states"])
                    save_checkpoint(self._export_model(), self.run_dir / ckpt.LAST,
                                    {"step": step, "trained_by": "ciaosr train", "run": cfg["name"]})
                    log.info(f"step {step}: saved training state {path} ({reason})")
                exported_at = step
            barrier(info)

        def save_stop(sig: int | None) -> None:
            """The stop's save (stopping.py): only the training state of the last finished
            step, quickly; its validation and export are left to --resume."""
            if not info.is_main:
                return
            why = f"stopped by signal {sig or 'on another process'}"
            if step == 0:
                log.info(f"{why} before the first step finished: nothing to save; start again with the same command")
                return
            left = owed()
            state = self._state_dict(step, samples_seen, best, opt, sched, scaler, adversary, sched_d, pending=left)
            path = ckpt.save_state(state, ckpt.state_path(self.run_dir, step))
            ckpt.prune_states(self.run_dir, tcfg["keep_states"])
            if left:
                why += f"; the {' and '.join(left)} left for --resume"
            log.info(f"step {step}: saved training state {path} ({why})")
            log.info(f"stopped at step {step}; continue with: {self._resume_hint(step)}")
            if self.stop_note:
                log.info(self.stop_note)

        def log_loss() -> None:
            """The mean loss since the last line, to the log."""
            nonlocal last_loss, t_last, steps_last, n_sum
            mean_loss = mean_scalar(float(loss_sum.item()) / n_sum, info, dev)
            if not math.isfinite(mean_loss):
                raise CiaosrError(f"the loss became {mean_loss} at step {step}; training stopped "
                                  f"(lower optimizer.lr, set train.grad_clip, or resume from an earlier state)")
            now = time.time()
            rate = (step - steps_last) / max(now - t_last, 1e-9)
            terms = {k: mean_scalar(float(v.item()) / n_sum, info, dev) for k, v in sorted(term_sums.items())}
            log.scalars(step, mean_loss, opt.param_groups[0]["lr"], rate, terms)
            last_loss, t_last, steps_last = mean_loss, now, step
            loss_sum.zero_()
            for v in term_sums.values():
                v.zero_()
            n_sum = 0

        def validate() -> None:
            nonlocal best, validated_at
            if info.is_main:
                results, mean, image = self.validator.run(self._export_model(), dev)
                with stops.commit():
                    log.validation(step, results, mean, image)
                    if math.isfinite(mean) and (best is None or mean > best):
                        best = mean
                        save_checkpoint(self._export_model(), self.run_dir / ckpt.BEST,
                                        {"step": step, "trained_by": "ciaosr train", "run": cfg["name"],
                                         "val_psnr": results, "val_psnr_mean": mean})
                    validated_at = step
            barrier(info)

        # A step in progress is abandoned at a stop (stopping.py), except under torchrun
        # (the processes stop together, after the step) and with a discriminator (its
        # spectral norms change in the forward pass): those steps are committed whole.
        whole_steps = info.enabled or adversary is not None
        stops = StopSignals(save_stop, wake=not info.enabled, exit_process=self.exit_on_signal, on_exit=log.close)
        optimisers = [opt] + ([adversary.opt] if adversary is not None else [])
        hooks = [o.register_step_pre_hook(lambda *_: stops.hold()) for o in optimisers]
        with stops:
            try:
                if owed() and step < total:  # what the stop that saved this state left
                    log.info(f"step {step}: the {' and '.join(owed())} left pending by the stop")
                    if "validation" in owed():
                        validate()
                    save_all("pending work done")
                net.train()
                for batch in loader:
                    try:
                        if whole_steps:
                            stops.hold()
                        torch.manual_seed(_step_seed(cfg["seed"], step, info.rank))
                        if self.batcher is not None:
                            rb = self.batcher(batch, dev)
                            inputs = (rb.lr, rb.coord, rb.cell, rb.target)
                        else:
                            inputs = tuple(batch[k].to(dev, non_blocking=True) for k in ("lr", "coord", "cell", "gt"))
                        if realworld_losses:
                            terms = realworld_step(net, model, opt, rb, self.loss_weights, perceptual=perceptual,
                                                   adversary=adversary, precision=self.precision, scaler=scaler,
                                                   clip=clip, params=self.trainable)
                            loss = terms.pop("loss")
                        else:
                            loss = optimisation_step(net, model, opt, inputs, precision=self.precision,
                                                     scaler=scaler, clip=clip, params=self.trainable)
                        stops.hold()  # the optimiser's hook has, unless the GradScaler skipped the step
                        if realworld_losses:
                            for k, v in terms.items():
                                term_sums.setdefault(k, torch.zeros((), dtype=torch.float64, device=dev))
                                term_sums[k] += v.double()
                        sched.step()
                        if sched_d is not None:
                            sched_d.step()
                        if self.ema is not None:
                            self.ema.update(model)
                        step += 1
                        samples_seen += bs * info.world_size
                        loss_sum += loss.detach().double()
                        n_sum += 1
                        log.advance()

                        if step % log_every == 0 or step == total:
                            log_loss()
                    finally:
                        stops.release()

                    if self.step_callback is not None:
                        self.step_callback(self, step)
                    why = _SIGNALLED if stops.signal is not None else _GO
                    if why == _GO and time_fraction is not None and step < total and time_fraction() >= 1:
                        why = _OUT_OF_TIME
                    why = max_int(why, info, dev)
                    if why == _SIGNALLED:
                        raise Stopped
                    if why == _OUT_OF_TIME:
                        if n_sum:
                            log_loss()
                        log.info(f"step {step}: the time budget (train.max_minutes = {tcfg['max_minutes']:g}) is spent")
                        save_all("time budget spent")  # first: a run killed while validating keeps its weights
                        if self.validator:
                            validate()
                            save_all("validated")  # the state then knows the best score, for a resume
                        log.info(f"stopped at step {step} of {total}; weights in {self.run_dir / ckpt.LAST}; "
                                 f"continue with: {self._resume_hint(step)}")
                        return TrainResult(self.run_dir, step, None, last_loss, best, timed_out=True)
                    if step % save_every == 0 and step < total:
                        save_all("periodic")
                    if self.validator and vevery and step % vevery == 0 and step < total:
                        validate()
                if step >= total:
                    if self.validator:
                        validate()
                    save_all("finished")
                    log.info(f"finished {step} iterations; weights in {self.run_dir / ckpt.LAST}")
            except Stopped:
                stops.finish()
                barrier(info)
                return TrainResult(self.run_dir, step, stops.signal or signal.SIGTERM, last_loss, best)
            finally:
                for hook in hooks:
                    hook.remove()
        return TrainResult(self.run_dir, step, None, last_loss, best)

    def _resume_hint(self, step: int) -> str:
        return ckpt.resume_command(ckpt.state_path(self.run_dir, step), self.info.world_size)

    # ------------------------------------------------------------------------
    def _state_dict(self, step, samples_seen, best, opt, sched, scaler, adversary=None, sched_d=None,
                    pending: list[str] | None = None) -> dict:
        """``pending``: what a stop left for the resume to do first ("validation", "export")."""
        model = self.model
        state = {
            "format": ckpt.STATE_FORMAT,
            "step": step,
            "samples_seen": samples_seen,
            "batch_size": self.cfg["train"]["batch_size"],
            "world_size": self.info.world_size,
            "best_psnr": best,
            "model_spec": json.dumps(ckpt.canonical_spec(model.spec)),
            "config": dump_config(self.cfg),
            "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "scaler": scaler.state_dict() if scaler is not None else None,
            "rng_torch": torch.get_rng_state(),
            "pending": list(pending or []),
        }
        if adversary is not None:
            state["discriminator"] = {
                "weights": {k: v.detach().cpu().clone() for k, v in adversary.model.state_dict().items()},
                "optimizer": adversary.opt.state_dict(),
                "scheduler": sched_d.state_dict(),
            }
        if torch.cuda.is_available() and self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state


def train(cfg: dict, *, resume: str | bool | None = None, step_callback=None) -> TrainResult:
    return Trainer(cfg, resume=resume, step_callback=step_callback).run()

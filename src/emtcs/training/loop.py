"""The training loop: Adam, validation, the best weights so far, resumable checkpoints."""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import zoo
from ..atomic import atomic_output
from ..decoders.gaptv import gap_tv
from ..errors import InputError
from ..metrics import psnr, ssim
from ..nets import build
from .config import LOSSES, TrainConfig
from .data import NO_DATA, Batches, validation_set
from .grow import initialise
from .losses import run_net, training_loss

#: CPU flags (Linux ``/proc/cpuinfo``) of native bfloat16 arithmetic, where autocast pays.
BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def native_bf16(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bfloat16 natively (its flags name one of :data:`BF16_FLAGS`):
    there a training step under bf16 autocast took about half the time of float32 (an Intel
    Xeon with AMX, an AMD EPYC with avx512_bf16); elsewhere it took 9 times as long.  False
    where the flags cannot be read (other systems)."""
    try:
        text = Path(cpuinfo).read_text(errors="replace")
    except OSError:
        return False
    flags = {word for line in text.splitlines() if line.startswith("flags") for word in line.split()}
    return any(flag in flags for flag in BF16_FLAGS)


def lr_factor(step: int, total: int, warmup: float = 0.03, floor: float = 0.05) -> float:
    """Linear warm-up, then cosine decay to ``floor``; resuming with more steps stretches the decay."""
    w = max(1, int(warmup * total))
    if step < w:
        return (step + 1) / w
    p = min(1.0, (step - w) / max(1, total - w))
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p))


def evaluate(
    net: torch.nn.Module | None,
    samples: list[dict[str, torch.Tensor]],
    task: str = "reconstruct",
    *,
    by_dose: bool = False,
) -> dict[str, float]:
    """Mean PSNR/SSIM against the clean frames (data range: each clip's clean range) of the
    reconstructions, or with ``task="denoise"`` of the denoised noisy frames.

    The network runs where its weights are.  With ``net=None`` it evaluates the baseline
    the model card compares with: GAP-TV, or the noisy frames themselves.  With ``by_dose``
    (samples at a few fixed doses, ``--val-doses``) the mean PSNR at each dose is added as
    ``psnr_DOSE``: a loss at one dose that a gain at another hides in the mean shows there.
    """
    dev = next(net.parameters()).device if net is not None else None
    ps, ss = [], []
    for s in samples:
        x = s["x"][0].numpy()
        if net is None:
            out = s["noisy"][0].numpy() if task == "denoise" else gap_tv(s["y"][0].numpy(), s["C"][0].numpy())
        else:
            s = {k: v.to(dev) for k, v in s.items()}
            with torch.inference_mode():
                denoised = net.denoise(s["noisy"], s["epu"], s["spread"]) if task == "denoise" else None
                out = (run_net(net, s) if denoised is None else denoised)[0].cpu().numpy()
        rng = float(x.max() - x.min())
        ps.append(psnr(x, out, data_range=rng))
        ss.append(np.mean([ssim(a, b, data_range=rng) for a, b in zip(x, out)]))
    scores = {"psnr": float(np.mean(ps)), "ssim": float(np.mean(ss))}
    if by_dose:
        doses = [float(s["dose"][0]) for s in samples]
        for dose in sorted(set(doses)):
            scores[f"psnr_{dose:g}"] = float(np.mean([p for p, d in zip(ps, doses) if d == dose]))
    return scores


def _parameter_groups(net: torch.nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Adam's parameter groups: the network's per-stage numbers at ``stage_lr`` times the
    learning rate (one group, as before that option, when the factor is 1); with
    ``cfg.only``, only the parameters it names, the others frozen."""
    trained = [(n, p) for n, p in net.named_parameters() if cfg.only in n]
    if not trained:
        raise InputError(f"--only {cfg.only!r} names none of {cfg.arch}'s parameters")
    for n, p in net.named_parameters():
        p.requires_grad_(cfg.only in n)
    names = tuple(getattr(net, "per_stage", ()))
    if cfg.stage_lr == 1.0 or not names:
        return [{"params": [p for _, p in trained]}]
    fast = [p for n, p in trained if n in names]
    rest = [p for n, p in trained if n not in names]
    return [g for g in ({"params": rest}, {"params": fast, "lr": cfg.lr * cfg.stage_lr}) if g["params"]]


def _check(cfg: TrainConfig) -> None:
    """One-line errors for settings no run can train with."""
    if cfg.task not in ("reconstruct", "denoise"):
        raise InputError(f"unknown training task {cfg.task!r} (reconstruct or denoise)")
    if cfg.loss not in LOSSES:
        raise InputError(f"unknown loss {cfg.loss!r} (known: {', '.join(LOSSES)})")
    if cfg.run < 1 or (cfg.run > 1 and (cfg.arch != "gapunet" or cfg.task != "reconstruct")):
        raise InputError(f"--run {cfg.run}: runs of groups (at least 1) are for GapUNet's reconstruction only")
    if cfg.edge_weight <= 0:
        raise InputError(f"--edge-weight {cfg.edge_weight}: a weight above 0")
    if cfg.spectral_weight < 0:
        raise InputError(f"--spectral-weight {cfg.spectral_weight}: a weight of 0 or more")
    if cfg.spectral_margin < 1:
        raise InputError(f"--spectral-margin {cfg.spectral_margin}: a factor of 1 or more")
    if not 0 < cfg.run_share <= 1:
        raise InputError(f"--run-share {cfg.run_share}: a share of the steps, above 0 and at most 1")
    if not 0 <= cfg.ema < 1:
        raise InputError(f"the weights' moving average needs a decay in [0, 1), got {cfg.ema}")
    if not (cfg.simulate or cfg.data or cfg.scene_files):
        raise InputError(NO_DATA)
    if not (cfg.simulate or cfg.val_scene_files):
        raise InputError("nothing to validate on: --no-simulate needs --val-scene-file FILES")


def _load_checkpoint(path: str | os.PathLike[str], cfg: TrainConfig, dev: torch.device) -> dict[str, Any]:
    """A checkpoint's state (tensors and JSON only), checked against the run that resumes it."""
    state = torch.load(path, map_location=dev, weights_only=True)
    saved = TrainConfig(**json.loads(state["config"]))
    if saved.net_config != cfg.net_config:
        raise InputError(f"{path} was trained with {saved.net_config}, not {cfg.net_config}")
    if saved.val_doses != cfg.val_doses:  # the best checkpoint is chosen by one validation
        doses = saved.val_doses or "drawn"
        raise InputError(f"{path} was validated at doses {doses}: resume with the same --val-doses")
    return state


@torch.no_grad()
def _update_average(averaged: dict[str, torch.Tensor], net: torch.nn.Module, decay: float) -> None:
    """One step of the weights' exponential moving average (buffers copied as they are)."""
    for k, v in net.state_dict().items():
        if v.is_floating_point():
            averaged[k].lerp_(v, 1 - decay)
        else:
            averaged[k].copy_(v)


def train(
    cfg: TrainConfig,
    output: str | os.PathLike[str],
    *,
    resume: str | os.PathLike[str] | None = None,
    device: str = "auto",
    threads: int | None = None,
    workers: int = 0,
    bf16: bool | None = None,
    max_minutes: float | None = None,
    force: bool = False,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a network; writes ``OUTPUT.safetensors`` (the best weights by validation PSNR so
    far, refreshed at each validation), ``OUTPUT.ckpt`` (resumable checkpoint, refreshed at
    each validation and every ``cfg.checkpoint_minutes``) and ``OUTPUT.log.jsonl``.

    ``threads`` caps the CPU threads torch uses (training in the background on one core
    while the machine does other work); ``workers`` processes make the training batches
    beside it (0: this process makes them), which a GPU needs to be kept busy.  ``bf16``
    runs the network under bfloat16 autocast (default: on CUDA and on CPUs with native
    bf16, :func:`native_bf16`; on others it is several times slower).
    ``max_minutes`` stops the run after that much wall time (validating and saving first).
    Returns the summary stored with the weights.
    """
    out = Path(output)
    weights_path, ckpt_path, log_path = (out.with_suffix(s) for s in (".safetensors", ".ckpt", ".log.jsonl"))
    if resume and cfg.init:
        raise InputError("give --init (start a new run from weights) or --resume (continue a run), not both")
    if not out.parent.is_dir():
        raise InputError(f"output folder {out.parent} does not exist")
    for path in (weights_path, ckpt_path, log_path):
        if path.exists() and not (force or resume):
            raise InputError(f"{path} exists; use --force to overwrite the run or --resume {ckpt_path} to continue it")
    _check(cfg)
    if workers < 0:
        raise InputError(f"workers must be 0 or more, got {workers}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but PyTorch sees no CUDA device")
    dev = torch.device(device)
    if threads:
        torch.set_num_threads(threads)
    # a fine-tune's added parts (a zero-started head, new channels) start alike whatever the
    # seed, so that runs differing in their samples only stay averageable (training/soup.py)
    torch.manual_seed(0 if cfg.init else cfg.seed)
    net = build(cfg.net_config).to(dev)
    if cfg.task == "denoise" and not hasattr(net, "denoise"):
        raise InputError(f"--task denoise pretrains a network's denoiser; {cfg.arch} has none (gapunet has)")
    opt = torch.optim.Adam(_parameter_groups(net, cfg), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg.steps))
    step, elapsed, cpu_s, history = 0, 0.0, 0.0, []
    averaged: dict[str, torch.Tensor] | None = None
    if resume:
        state = _load_checkpoint(resume, cfg, dev)
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optim"])
        sched.load_state_dict(state["sched"])
        step, elapsed = int(state["step"]), float(state["elapsed"])
        cpu_s = float(state.get("cpu_s", elapsed))
        history = json.loads(state["history"])
        averaged = state.get("ema") if cfg.ema > 0 else None
    elif cfg.init:
        initialise(net, cfg)
    if cfg.ema > 0 and averaged is None:  # a new run, or one that ran without the average
        averaged = {k: v.detach().clone() for k, v in net.state_dict().items()}
    say = log or (lambda msg: None)
    say(
        f"building training pool ({cfg.scenes if cfg.simulate else 0} simulated scenes, "
        f"{len(cfg.data)} data files, {len(cfg.scene_files)} scene files)"
    )
    val = validation_set(cfg, cfg.val_samples)
    baseline = evaluate(None, val, cfg.task, by_dose=bool(cfg.val_doses))
    baseline_name = "noisy frames" if cfg.task == "denoise" else "GAP-TV"
    say(f"{baseline_name} on the validation set: {baseline['psnr']:.2f} dB, SSIM {baseline['ssim']:.4f}")
    n_params = sum(p.numel() for p in net.parameters())
    t_start = time.perf_counter() - elapsed
    cpu_start = time.process_time() - cpu_s
    best = max((h["val_psnr"] for h in history if "val_psnr" in h), default=-math.inf)
    use_bf16 = (dev.type == "cuda" or (dev.type == "cpu" and native_bf16())) if bf16 is None else bf16
    hardware = (
        torch.cuda.get_device_name(0)
        if dev.type == "cuda"
        else f"{platform.machine()} {platform.processor() or 'CPU'}, {torch.get_num_threads()} thread(s)"
    ) + (", bf16 autocast" if use_bf16 else ", float32")

    def summary() -> dict[str, Any]:
        top = max((h for h in history if "val_psnr" in h), key=lambda h: h["val_psnr"], default={})
        return {
            "arch": cfg.arch,
            "net": cfg.net_config,
            "parameters": n_params,
            "steps": top.get("step", step),
            "samples": top.get("step", step) * cfg.batch,
            "wall_s": top.get("elapsed_s", time.perf_counter() - t_start),
            "cpu_hours": top.get("cpu_hours"),
            "hardware": hardware,
            "train_config": asdict(cfg),
            "validation": {
                "psnr": top.get("val_psnr"),
                "ssim": top.get("val_ssim"),
                "gaptv_psnr": baseline["psnr"],  # for task "denoise": the noisy frames'
                "gaptv_ssim": baseline["ssim"],
                "baseline": baseline_name,
                "samples": len(val),
                "reference": "clean (noise-free) frames",
                "psnr_by_dose": {  # e/px: (this network, baseline)
                    k.removeprefix("psnr_"): (top.get(f"val_{k}"), v)
                    for k, v in baseline.items()
                    if k.startswith("psnr_")
                },
            },
        }

    def validated() -> torch.nn.Module:
        """The weights that are validated and saved: the moving average where there is one."""
        if averaged is None:
            return net
        shadow = build(cfg.net_config)
        shadow.load_state_dict(averaged)
        return shadow.to(dev)

    def save_weights(weights: dict[str, torch.Tensor]) -> None:
        with atomic_output(weights_path, force=True) as tmp:
            # the networks do not depend on B; they serve the range of B they were trained on
            zoo.save_weights(
                tmp,
                weights,
                cfg.net_config,
                serves=list(range(min(cfg.B), max(cfg.B) + 1)),
                training=summary(),
            )

    def checkpoint() -> None:
        state = {
            "model": net.state_dict(),
            "optim": opt.state_dict(),
            "sched": sched.state_dict(),
            "step": step,
            "elapsed": time.perf_counter() - t_start,
            "cpu_s": time.process_time() - cpu_start,
            "config": json.dumps(asdict(cfg)),
            "history": json.dumps(history),
        }
        if averaged is not None:
            state["ema"] = averaged
        with atomic_output(ckpt_path, force=True) as tmp:
            torch.save(state, tmp)

    last_ckpt = t_run = time.perf_counter()
    fresh_log = not log_path.exists()
    try:
        with Batches(cfg, step, workers) as batches, open(log_path, "a" if resume else "w") as logf:
            while step < cfg.steps:
                net.train()
                shift, run, cpu_batch = next(batches)
                batch = {k: v.to(dev, non_blocking=True) for k, v in cpu_batch.items()}
                B = int(batch["C"].shape[1])
                with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
                    loss = training_loss(net, batch, cfg, shift, run)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                sched.step()
                if averaged is not None:
                    _update_average(averaged, net, cfg.ema)
                step += 1
                rec: dict[str, float] = {
                    "step": step,
                    "loss": float(loss.detach()),
                    "B": B,
                    "lr": sched.get_last_lr()[0],
                }
                out_of_time = max_minutes is not None and time.perf_counter() - t_run > 60 * max_minutes
                if step % cfg.val_every == 0 or step == cfg.steps or out_of_time:
                    judged = validated().eval()
                    scores = evaluate(judged, val, cfg.task, by_dose=bool(cfg.val_doses))
                    rec.update({f"val_{k}": v for k, v in scores.items()})
                    rec["elapsed_s"] = time.perf_counter() - t_start
                    rec["cpu_hours"] = (time.process_time() - cpu_start) / 3600
                    history.append(rec)
                    if rec["val_psnr"] > best:
                        best = rec["val_psnr"]
                        save_weights(judged.state_dict())
                    checkpoint()
                    last_ckpt = time.perf_counter()
                elif time.perf_counter() - last_ckpt > 60 * cfg.checkpoint_minutes:
                    checkpoint()
                    last_ckpt = time.perf_counter()
                logf.write(json.dumps(rec) + "\n")
                logf.flush()
                if on_step:
                    on_step(step, rec)
                if out_of_time:
                    say(f"stopped after {max_minutes:g} minutes, at step {step}")
                    break
    except BaseException:
        # a run that fails or is stopped before its first checkpoint leaves nothing behind
        if fresh_log and not ckpt_path.exists():
            log_path.unlink(missing_ok=True)
        raise
    if not weights_path.exists():
        save_weights(validated().state_dict())
    return summary()

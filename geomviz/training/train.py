"""Training: one run of one objective, written to a crash-safe store as it goes.

The training step never synchronises with the device: loss, accuracy, the
non-finite flag and the gradient norm accumulate in one device tensor that is
moved to the host once per flush (every ``flush_every`` steps and at epoch end),
all-reduced first under DDP. A non-finite loss is therefore noticed at the next
flush; the run then stops with status ``diverged``.

Seeds: the backbone is initialised from ``seed`` and the head from ``seed + 1``,
and epoch ``e`` shuffles with ``(seed, e)``, so every objective of a comparison
starts from the same backbone, the same class vectors (linear weights and
Euclidean centres share their initial distribution and draws) and sees the same
batches, also after ``--resume``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn import functional as F

from ..data import (
    DATASETS,
    IGNORE_INDEX,
    TOKEN_DATASETS,
    DataBundle,
    apply_label_noise,
    load_dataset,
    load_tokens,
)
from ..data.load import DIR_DATASETS
from ..models import MODELS, Classifier, build_backbone, tie_embeddings
from ..objectives.plugins import load_objective
from ..objectives.registry import ObjectiveInfo, _FusedObjective, create_objective
from .config import ConfigError, TrainConfig
from .evaluate import evaluate
from .evaluate_tokens import evaluate_tokens
from .probing import Probing
from .provenance import provenance
from .resume import open_writer

__all__ = ["train", "check_objective", "resolve_objective", "load_bundle", "Diverged",
           "CHECKPOINT"]

CHECKPOINT = "checkpoint.pt"
FUSED_MIN_VOCAB = 8192  # --fused auto: fused head + loss from this many classes on
FUSED = {"ce": "ce_fused", "tfsd": "tfsd_fused"}
PROBE_ROWS = 4096  # rows a fused run's head sees on a probe step


class Diverged(RuntimeError):
    """The loss became NaN or infinite; the run was closed with status ``diverged``."""


class _Step(nn.Module):
    """What DDP wraps: ``(x, y, probe) -> (loss, detached logits or None)``.

    A fused objective computes the loss straight from the features and never holds the
    ``[B·T, V]`` logits; it then returns no logits (no training accuracy), and on a probe
    step runs the head on the first ``probe_rows`` rows only, for the probes' hooks.
    """

    def __init__(self, model: Classifier, probe_rows: int = PROBE_ROWS) -> None:
        super().__init__()
        self.model, self.probe_rows = model, probe_rows

    def forward(self, x: Tensor, y: Tensor, probe: bool = False) -> tuple[Tensor, Tensor | None]:
        obj = self.model.objective
        f = self.model.features(x)  # [B, D] or [B, T, D]
        if isinstance(obj, _FusedObjective):
            ff = f.reshape(-1, f.shape[-1])  # [B·T, D]
            loss = obj(ff, y.reshape(-1))
            if probe:
                with torch.no_grad():
                    obj.head(ff[: self.probe_rows])
            return loss, None
        logits = obj.head(f)  # [B, C] or [B, T, V]
        return obj.loss(logits, y), logits.detach()


def select_device(spec: str, local_rank: int = 0) -> torch.device:
    if spec == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except RuntimeError:
        raise ConfigError(f"unknown device {spec!r} (use auto, cpu, cuda or cuda:N)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r} asked for, but CUDA is not available here")
    return dev


def _augment(x: Tensor, gen: torch.Generator) -> Tensor:
    """Random 4-pixel-padded crop and horizontal flip of uint8 images ``[B, C, H, W]``."""
    b, _, h, w = x.shape
    shift = torch.randint(0, 9, (2, b), generator=gen, device=gen.device).to(x.device)
    flip = torch.rand(b, generator=gen, device=gen.device).to(x.device) < 0.5
    padded = F.pad(x, (4, 4, 4, 4))
    rows = (shift[0][:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = shift[1][:, None] + torch.arange(w, device=x.device)  # [B, W]
    cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, :]  # [B, 1, W]
    out = padded[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]  # [B,H,W,C]
    return out.permute(0, 3, 1, 2).contiguous()


def _lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1.0 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return f


def _save_checkpoint(path: Path, **state) -> None:
    """Write, flush to disk, then rename: neither a killed process nor a power cut leaves
    half a checkpoint, or a renamed file whose bytes never reached the disk."""
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    if hasattr(os, "O_DIRECTORY"):  # the rename itself, on POSIX
        fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _dist() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def check_objective(cfg: TrainConfig) -> None:
    """Fail on a bad objective, dataset or model name, a bad hyperparameter, a model that
    does not fit the data, a missing data path or device, before any data is loaded or any
    folder written (train, compare, study and sweep all start here). A user objective
    (``package.module:name`` or an entry point) is imported here, and ``cfg.objective`` is
    set to the spec that finds it again in a fresh process (resume, a worker)."""
    info = resolve_objective(cfg.objective)
    cfg.objective = info.spec
    create_objective(info.name, 4, 3, **cfg.objective_kw)
    for what, name, known in (("dataset", cfg.dataset, DATASETS), ("model", cfg.model, MODELS)):
        if name not in known:
            raise ConfigError(f"unknown {what} {name!r}; choose one of: {', '.join(known)}")
    if cfg.fused == "on" and info.name not in FUSED and info.name not in FUSED.values():
        raise ConfigError(f"--fused on: {info.name} has no fused form; fused objectives: "
                          f"{', '.join(FUSED)}")
    tokens = cfg.dataset in TOKEN_DATASETS
    if cfg.model == "gpt" and not tokens:
        raise ConfigError("the gpt model needs token sequences (--dataset synonyms or text)")
    if tokens and cfg.model not in ("auto", "gpt"):
        raise ConfigError(f"--dataset {cfg.dataset} is token sequences: use --model gpt (or auto)")
    if cfg.tie_embeddings and not tokens:
        raise ConfigError("--tie-embeddings needs the gpt model (a token dataset)")
    # (a path given for another dataset is refused by TrainConfig.validate: ONLY_FOR)
    for flag, path in (("--data-path", cfg.data_path), ("--ood-data-path", cfg.ood_data_path)):
        if cfg.dataset == "text" and path is not None and not Path(path).is_file():
            raise ConfigError(f"{flag} {path} is not a file")
    if cfg.dataset == "text" and not cfg.data_path:
        raise ConfigError("--dataset text needs --data-path (a UTF-8 text file)")
    if cfg.dataset in DIR_DATASETS and not cfg.data_dir:
        raise ConfigError(f"--dataset {cfg.dataset} needs --data-dir, the folder holding its "
                          "files")
    for flag, folder in (("--data-dir", cfg.data_dir), ("--ood-dir", cfg.ood_dir),
                         ("--near-ood-dir", cfg.near_ood_dir)):
        if folder and not Path(folder).is_dir():
            raise ConfigError(f"{flag} {folder} is not a folder")
    select_device(cfg.device)


def resolve_objective(spec: str) -> ObjectiveInfo:
    """The registered objective ``spec`` names: a built-in's or a plugin's name, an entry
    point, or ``package.module:name`` (imported now). A bad spec is one ConfigError line."""
    try:
        return load_objective(spec)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def objective_name(cfg: TrainConfig, num_classes: int) -> str:
    """The registered objective to build: the fused form of ``ce``/``tfsd`` with ``--fused
    on``, or with ``auto`` from ``FUSED_MIN_VOCAB`` classes on (same loss, chunked). A
    plugin's spec is resolved (imported) first, as a spawned worker must."""
    name = resolve_objective(cfg.objective).name
    fuse = cfg.fused == "on" or (cfg.fused == "auto" and num_classes >= FUSED_MIN_VOCAB)
    return FUSED.get(name, name) if fuse else name


def load_bundle(cfg: TrainConfig) -> DataBundle:
    """The data ``cfg`` asks for: dataset, held-out classes and both OOD sets."""
    if cfg.dataset in TOKEN_DATASETS:
        return load_tokens(cfg.dataset, cfg.seed, data_path=cfg.data_path,
                           ood_data_path=cfg.ood_data_path, tokenizer=cfg.tokenizer,
                           vocab_size=cfg.vocab_size, seq_len=cfg.seq_len,
                           train_tokens=cfg.train_tokens, test_tokens=cfg.test_tokens,
                           concepts=cfg.concepts, max_synonyms=cfg.max_synonyms,
                           order=cfg.order, emission=cfg.emission)
    bundle = load_dataset(cfg.dataset, cfg.data_dir, tuple(cfg.ood_classes), cfg.ood_dataset,
                          cfg.ood_dir, seed=cfg.seed, near_ood_dataset=cfg.near_ood_dataset,
                          near_ood_dir=cfg.near_ood_dir)
    return apply_label_noise(bundle, cfg.label_noise, cfg.label_noise_mode, cfg.seed)


def train(cfg: TrainConfig, bundle: DataBundle | None = None) -> Path:
    """Train one run; returns its folder. Raises :class:`Diverged` on a non-finite loss."""
    cfg.validate()
    rank, world, local_rank = _dist()
    device = select_device(cfg.device, local_rank)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    amp_dtype = torch.bfloat16 if (cfg.amp == "bf16" or (cfg.amp == "auto" and
                                                         device.type == "cuda")) else None
    out = Path(cfg.out)
    bundle = bundle or load_bundle(cfg)
    torch.manual_seed(cfg.seed)
    tokens = bundle.kind == "tokens"
    try:
        backbone = build_backbone(cfg.model, bundle.input_shape, cfg.feature_dim,
                                  tuple(cfg.hidden), cfg.width,
                                  vocab_size=bundle.num_classes if tokens else None,
                                  gpt_size=cfg.gpt_size, block_size=cfg.block_size,
                                  qk_layernorm=cfg.qk_layernorm)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    torch.manual_seed(cfg.seed + 1)  # the head: same draws for every objective
    # labels were range-checked when the data was loaded: no per-step device sync
    head_name = objective_name(cfg, bundle.num_classes)
    # (a plugin's factory need not take ``validate``: its labels are checked by its loss)
    quiet = {"validate": False} if "validate" in resolve_objective(head_name).params else {}
    objective = create_objective(head_name, cfg.feature_dim, bundle.num_classes,
                                 **{**quiet, **cfg.objective_kw})
    if cfg.tie_embeddings:
        tie_embeddings(backbone, objective)
    model = Classifier(backbone, objective).to(device)
    step_module: nn.Module = _Step(model)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        step_module = torch.compile(step_module)

    steps_per_epoch = math.ceil(len(bundle.x_train) / world / cfg.batch_size)
    total = steps_per_epoch * cfg.epochs
    params = model.parameters()
    opt = (torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
           if cfg.optimizer == "adamw" else
           torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay, nesterov=True))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, _lr_lambda(round(cfg.warmup_epochs * steps_per_epoch), total))

    ckpt_path = out / CHECKPOINT
    label = resolve_objective(cfg.objective).name  # a plugin's name, not its spec
    meta = {"name": cfg.name or out.name, "objective": label, "dataset": cfg.dataset,
            "objective_spec": cfg.objective, "head_objective": objective.name,
            "kind": bundle.kind,
            "seed": cfg.seed, "config": dataclasses.asdict(cfg), "class_names": bundle.class_names,
            "ood_name": bundle.ood_name, "near_ood_name": bundle.near_ood_name,
            "data_info": bundle.info, "steps_per_epoch": steps_per_epoch, "total_steps": total,
            **provenance(device, world)}
    # one writer per run (lock); --resume: config check, checkpoint, or a restart from scratch
    writer, start_epoch, step, probe_state = open_writer(cfg, meta, ckpt_path, device, rank,
                                                         model, opt, sched)
    x_all, y_all = bundle.x_train.to(device), bundle.y_train.to(device)
    noisy_all = None if bundle.noisy is None else bundle.noisy.to(device)
    bar = _progress(cfg, rank, total, step)
    probing = Probing(cfg, model, bundle, writer, device, rank, total)
    if rank == 0 and step == 0 and bundle.noisy is not None:
        writer.array(0, "train.noisy_index", bundle.noisy_index)
    try:
        probing.__enter__()
        probing.load_state_dict(probe_state)  # decomp.* and spike history continue
        if step == 0:
            probing.after_step(0)  # the initial geometry
        for epoch in range(start_epoch, cfg.epochs):
            step = _run_epoch(cfg, bundle, step_module, opt, sched, probing, x_all, y_all, epoch,
                              step, device, amp_dtype, rank, world, model, bar, noisy_all)
            if rank == 0:
                res = (evaluate_tokens if tokens else evaluate)(
                    model, bundle, device, cfg.eval_batch_size, amp_dtype,
                    on_test=probing.on_test(step, epoch), on_scores=_score_writer(writer, step),
                    class_groups=cfg.class_groups != "off")
                for split, values in res.items():
                    writer.scalars(step, values, split=split, epoch=epoch)
                writer.flush()
                _save_checkpoint(ckpt_path, model=model.state_dict(), opt=opt.state_dict(),
                                 sched=sched.state_dict(), epoch=epoch, step=step,
                                 config=dataclasses.asdict(cfg), probes=probing.state_dict())
                writer.set_meta(epochs_done=epoch + 1, final=res)
            if world > 1:
                dist.barrier()
    except Diverged as e:
        writer.close("diverged", str(e))
        raise
    except BaseException as e:
        writer.close("crashed", f"{type(e).__name__}: {e}")
        raise
    finally:
        probing.__exit__(None, None, None)
        if bar is not None:
            bar.close()
    writer.close("finished")
    return out


def _score_writer(writer, step: int):
    """Per-sample ID/OOD confidence scores of this evaluation, for the OOD panel."""
    def write(conf_id: dict, conf_ood: dict) -> None:
        for score in conf_id:
            writer.array(step, f"eval.confidence.{score}.id", conf_id[score].astype("float32"))
            writer.array(step, f"eval.confidence.{score}.ood", conf_ood[score].astype("float32"))

    return write


def _run_epoch(cfg, bundle, step_module, opt, sched, probing, x_all, y_all, epoch, step,
               device, amp_dtype, rank, world, model, bar, noisy_all=None) -> int:
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    perm = torch.randperm(len(x_all), generator=gen)[rank::world].to(device)
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed * 100_003 + epoch + rank)
    acc = torch.zeros(6, device=device)  # loss·n, correct, n, non-finite, grad norm, steps
    n_batches = math.ceil(len(perm) / cfg.batch_size)
    clock = {"t": time.perf_counter(), "lr": opt.param_groups[0]["lr"]}
    step_module.train()
    for b in range(n_batches):
        idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]
        xb, yb = x_all[idx], y_all[idx]  # [B, ...] and [B] (or [B, T] next tokens)
        if bundle.kind == "image" and cfg.augment:
            xb = _augment(xb, aug_gen)
        probing.before_step(step + 1, yb, force=b == n_batches - 1,  # record at every flush
                            noisy=None if noisy_all is None else noisy_all[idx])
        with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16,
                            enabled=amp_dtype is not None):
            loss, logits = step_module(bundle.prepare(xb), yb, probing.armed)
        probing.on_loss(step + 1, loss)  # spike detection, on the device
        opt.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip else float("inf")
        gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        clock["lr"] = opt.param_groups[0]["lr"]  # the rate this update uses (a host float)
        opt.step()
        sched.step()
        step += 1
        keep = yb != IGNORE_INDEX
        n = keep.sum().float()
        correct = (((logits.argmax(-1) == yb) & keep).sum().float() if logits is not None
                   else torch.zeros((), device=device))
        acc += torch.stack([loss.detach().float() * n, correct, n,
                            (~torch.isfinite(loss.detach())).float(), gnorm.float(),
                            torch.ones((), device=device)])
        if bar is not None:
            bar.update(1)
        if step % cfg.flush_every == 0 or b == n_batches - 1:
            acc = _flush(acc, probing, step, epoch, clock, bar, bundle.kind == "tokens",
                         logits is not None)
        probing.after_step(step)
    return step


def _flush(acc: Tensor, probing, step: int, epoch: int, clock: dict, bar, tokens: bool,
           has_acc: bool) -> Tensor:
    """Write the training scalars of the updates since the last flush.

    ``lr`` is the rate update ``step`` used; ``loss``/``acc`` are means over the targets
    those updates trained on (token positions for language models), ``tokens_per_s`` (or
    ``samples_per_s``) the wall-clock rate since the last flush, probes included.
    """
    # the one device->host transfer per flush: probe statistics and these sums together,
    # all-reduced across DDP ranks first
    host = probing.flush(step, epoch, acc, loss_fn=lambda h: h[0] / max(h[2], 1.0))
    loss_n, correct, n, bad, gnorm, steps = host.tolist()
    now = time.perf_counter()
    rate, clock["t"] = n / max(now - clock["t"], 1e-9), now
    writer = probing.writer
    if steps == 0:
        return torch.zeros_like(acc)
    values = {"loss": loss_n / n, "grad_norm": gnorm / steps, "lr": clock["lr"],
              "tokens_per_s" if tokens else "samples_per_s": rate}
    if has_acc:
        values["acc"] = correct / n
    writer.scalars(step, values, split="train", epoch=epoch)
    writer.flush()
    if bar is not None:
        post = {"epoch": epoch + 1, "loss": f"{values['loss']:.4f}"}
        if has_acc:
            post["acc"] = f"{values['acc']:.3f}"
        post["tok/s" if tokens else "samples/s"] = f"{rate:,.0f}"
        bar.set_postfix(post, refresh=False)
    if bad > 0:
        raise Diverged(f"loss became non-finite by step {step} (epoch {epoch}); "
                       "the run is kept with status 'diverged'")
    return torch.zeros_like(acc)


def _progress(cfg: TrainConfig, rank: int, total: int, done: int):
    """One bar per run (stderr), live loss and accuracy refreshed at each flush."""
    if not cfg.progress or rank != 0:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=done, desc=cfg.name or cfg.objective, unit="step",
                mininterval=1.0, dynamic_ncols=True)

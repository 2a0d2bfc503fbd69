"""Names a reader understands: legend labels, hover names and table numbers.

Pure helpers shared by the publication figures and the dashboard:

- ``run_labels(runs) -> list[str]``: a legend label per run (or group of seeds), from
  dicts with ``objective`` and optionally ``seed``, ``lr``, ``qk`` and ``name``. The label
  is the objective name, plus the rate, the qk-layernorm setting or the seed only where
  two entries would otherwise read the same ("ce lr 0.01", "ce seed 1"); the run name is
  the last resort. Never a full run id such as "demo-20261202-163955/ce-s0".
- ``group_key(config) -> str``: runs whose configs are equal except for the seed (and
  run-only keys such as the output folder) share a key: group runs by it, never by
  objective alone, so ``ce-lr0.001`` and ``ce-lr0.01`` are two groups, not "2 seeds".
- ``pretty_key(key) -> str``: a stored series name as words ("hard.pred" -> "hard
  samples, prediction H(q)"), for hovers and legends.
- ``table_column(stats, digits) -> list[str]``: one table column of ``(mean, sd, n)``
  (or ``None``) cells with one number of decimal places for every cell, means and sds
  alike, chosen so the largest mean shows ``digits`` significant digits.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["run_labels", "pretty_key", "table_column", "fmt_rate", "group_key", "RUN_ONLY_KEYS"]

_WORDS = {"hard": "hard samples", "easy": "easy samples", "pred": "prediction H(q)",
          "target": "target H(p)", "truth": "true law H(true)", "synonym": "synonym positions",
          "single": "determined positions", "anchor_gap": "anchor gap s·d_y",
          "nearest_negative": "nearest negative s·d_neg", "p50": "median", "p95": "p95",
          "p5": "p5", "norm": "‖x‖", "penultimate": "feature", "radial_fraction":
          "radial share", "grad": "gradient", "max_logit": "max logit", "head": "head"}


def pretty_key(key: str) -> str:
    """``"hard.pred"`` -> ``"hard samples, prediction H(q)"``; unknown parts keep their
    text with ``_`` as spaces."""
    parts = [_WORDS.get(p, p.replace("_", " ")) for p in str(key).split(".") if p]
    return ", ".join(parts)


def fmt_rate(lr: float) -> str:
    """A learning rate as people write it: ``0.001``, ``3e-4`` -> ``0.0003``, ``1e-05``."""
    lr = float(lr)
    return f"{lr:.3g}" if lr >= 1e-4 else f"{lr:.0e}"


#: config keys that change how a run is executed or stored, not what it learns
RUN_ONLY_KEYS = frozenset({"seed", "out", "name", "resume", "device", "progress",
                           "flush_every", "eval_batch_size", "amp", "compile", "data_dir",
                           "ood_dir", "near_ood_dir"})


def group_key(config: dict) -> str:
    """What a run learns: its config without the seed and the run-only keys
    (:data:`RUN_ONLY_KEYS`). Runs with equal keys differ only by seed and form one group."""
    import json

    return json.dumps({k: v for k, v in sorted((config or {}).items())
                       if k not in RUN_ONLY_KEYS}, sort_keys=True, default=str)


_SHORT = {"lr": "lr", "qk_layernorm": "qk-norm", "qk": "qk-norm", "label_noise": "noise",
          "seed": "seed"}


def _field(run: dict, key: str) -> str | None:
    v = run.get(key)
    if v is None:
        return None
    if key == "lr":
        return f"lr {fmt_rate(v)}"
    if isinstance(v, bool):
        return f"{_SHORT.get(key, key)} {'on' if v else 'off'}"
    return f"{_SHORT.get(key, key.replace('_', ' '))} {v}"


def run_labels(runs: list[dict]) -> list[str]:
    """A short, distinct legend label per entry of ``runs`` (see the module docstring):
    the objective, then, among entries that would read the same, the fields that tell them
    apart: ``lr``, ``qk``/``qk_layernorm``, any other field, ``seed`` last."""
    labels = [str(r.get("objective") or r.get("name") or "?") for r in runs]
    fields = list(dict.fromkeys(k for r in runs for k in r))
    order = [k for k in ("lr", "qk", "qk_layernorm") if k in fields] + \
        sorted(k for k in fields if k not in ("lr", "qk", "qk_layernorm", "seed", "objective",
                                               "name", "folder")) + \
        (["seed"] if "seed" in fields else [])
    for key in order:
        clash = {lab for lab in labels if labels.count(lab) > 1}
        if not clash:
            break
        new = list(labels)
        for i, r in enumerate(runs):
            same = [repr(runs[j].get(key)) for j in range(len(runs)) if labels[j] == labels[i]]
            if labels[i] in clash and len(set(same)) > 1:
                extra = _field(r, key)
                if extra:
                    new[i] = f"{labels[i]} {extra}"
        labels = new
    # still equal (same config twice): the later ones get their run name
    seen: set[str] = set()
    for i, r in enumerate(runs):
        if labels[i] in seen and r.get("name"):
            labels[i] = f"{labels[i]} ({r['name']})"
        seen.add(labels[i])
    return labels


def table_column(stats: list[tuple[float, float, int] | None], digits: int = 4) -> list[str]:
    """``mean ± sd`` cells (just the mean for one seed, "–" when missing), all with the
    decimals that give the column's largest |mean| ``digits`` significant digits."""
    means = [abs(s[0]) for s in stats if s is not None and np.isfinite(s[0])]
    big = max(means, default=0.0)
    lead = math.floor(math.log10(big)) if big > 0 else 0
    decimals = min(max(0, digits - 1 - lead), 8)
    out = []
    for s in stats:
        if s is None or not np.isfinite(s[0]):
            out.append("–")
            continue
        mean, sd, n = s
        text = f"{mean + 0.0:.{decimals}f}"
        out.append(text if n < 2 else f"{text} ± {sd:.{decimals}f}")
    return out

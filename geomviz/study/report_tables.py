"""Report tables for the language-model and label-noise presets (Markdown).

Each returns ``''`` when no run recorded its numbers, so one report function
serves every preset. Values are :func:`geomviz.study.results.run_record`'s.
"""

from __future__ import annotations

from .results import fmt_stat, group_records, seed_stat

__all__ = ["lm_table", "noise_table"]

_LM = [("synonym_target", "H(p) synonym"), ("synonym_pred", "H(q) synonym"),
       ("synonym_truth", "H(true) synonym"), ("single_target", "H(p) determined"),
       ("single_pred", "H(q) determined"), ("truth_kl", "KL(true ‖ q)"), ("nll", "test NLL"),
       ("classes_ratio", "within/between")]
_NOISE = [("acc", "test accuracy"), ("memorised", "memorised"),
          ("grad_noisy", "‖g‖ flipped"), ("grad_clean", "‖g‖ clean"),
          ("grad_noisy_ratio", "flipped/clean")]


def _table(records: list[dict], columns: list[tuple[str, str]], caption: str) -> str:
    """Mean ± sd per objective of ``columns`` (record key, header), then ``caption``;
    ``''`` when no run recorded the first column (the table's defining quantity)."""
    key = columns[0][0]
    if not any(r.get(key) is not None for r in records):
        return ""
    lines = ["| objective | seeds | " + " | ".join(h for _, h in columns) + " |",
             "|---|---:|" + "---:|" * len(columns)]
    for obj, members in group_records(records).items():
        cells = [fmt_stat(seed_stat(r.get(k) for r in members), 3) for k, _ in columns]
        lines.append(f"| {obj} | {len(members)} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", caption])


def lm_table(records: list[dict]) -> str:
    """Entropies (nats) on synonym and determined positions against the exact law."""
    return _table(records, _LM,
                  "Test positions whose true next token is spread over a synonym set (synonym) "
                  "or fixed (determined). H(p): the training target's entropy (one-hot for CE; "
                  "TFSD's zero-anchor target), H(q): the prediction's, H(true): the exact "
                  "law's; KL(true ‖ q) averaged over all test positions; NLL floor = the law's "
                  "own NLL. Mean ± sd over seeds, nats.")


def noise_table(records: list[dict]) -> str:
    """Memorisation and feature-gradient norms of flipped vs clean training samples."""
    if not any(r.get("label_noise") for r in records):
        return ""
    return _table(records, _NOISE,
                  "memorised: the share of flipped training samples predicted with their "
                  "flipped label at the end. ‖g‖: the mean per-sample feature-gradient norm "
                  "‖∂ℓ_i/∂x_i‖ of flipped and clean samples of the training batches, averaged "
                  "over the last quarter of training; flipped/clean is their ratio (1 = no "
                  "difference).")

"""The claims table: C1 to C8 of the TFSD blog post, each with its experiment and verdict.

Every verdict is computed here from the run records (:mod:`geomviz.study.results`)
with the paired seed interval of :mod:`geomviz.study.verdicts`; a claim the runs
given cannot test says so. The same function fills every study report, so a claim
is judged the same way on every preset, whichever way the numbers go.
"""

from __future__ import annotations

from collections.abc import Callable

from .results import fmt_value, group_records, seed_stat
from .verdicts import paired_verdict

__all__ = ["NEGLIGIBLE", "SUBJECTS", "subjects", "CLAIMS", "Part", "claim_rows", "claims_table",
           "FLAT_SHARE", "EXPLOSION"]

# a target entropy below this share of the true (Bayes) entropy carries no usable uncertainty
FLAT_SHARE = 0.01
# a paired difference below this share of the values' size is negligible, however clear
NEGLIGIBLE = 0.02
# a growth of the feature norm below this factor (from initialisation) is not an "explosion"
EXPLOSION = 2.0

CLAIMS = {
    "C1": "CE explodes the feature norm (radial explosion)",
    "C2": "distance logits are bounded",
    "C3": "the target stays flat for hard samples",
    "C4": "fewer loss spikes in LLMs",
    "C5": "better OOD detection",
    "C6": "gradients are capped for outliers",
    "C7": "no tearing of the manifold between synonyms",
    "C8": "dark knowledge and semantic structure preserved",
}

Part = tuple[str, list[dict]]  # (label, run records): one dataset/setting of a study
Row = tuple[str, str]  # (experiment, verdict)
_SUBJECT, _BASE = "tfsd", "ce"
# TFSD variants judged against CE, each in its own rows (label suffix)
SUBJECTS = {"tfsd": "TFSD", "tfsd_scaled": "TFSD at s = 1/D"}


def _by_seed(groups: dict, obj: str, key: str) -> dict:
    return {r["seed"]: r.get(key) for r in groups.get(obj, []) if r.get(key) is not None}


def _mean(groups: dict, obj: str, key: str) -> float | None:
    s = seed_stat(r.get(key) for r in groups.get(obj, []))
    return None if s is None else s[0]


def _pair(groups: dict, key: str, better: str, a: str = _SUBJECT, b: str = _BASE):
    return paired_verdict(_by_seed(groups, a, key), _by_seed(groups, b, key), better)


def _ce_minus(groups: dict, key: str, sub: str):
    """CE minus ``sub`` on ``key``, paired over seeds, with both means: ``(verdict, CE mean,
    sub mean)``, or None without paired seeds (C1 and C7 are read this way round)."""
    v = _pair(groups, key, "", _BASE, sub)
    return None if v is None else (v, _mean(groups, _BASE, key), _mean(groups, sub, key))


def _say(v, phrases: dict[str, str], unclear: str = "not supported: no clear difference",
         size: float | None = None) -> str:
    """The verdict phrase for a paired comparison's label; one seed gives none, and a clear
    difference under :data:`NEGLIGIBLE` of ``size`` (the values' magnitude) counts as none."""
    if v.label == "one seed":
        return "no verdict from one seed"
    if v.clear and size is not None and abs(v.mean) < NEGLIGIBLE * size:
        return (f"not supported: a clear but negligible difference (|Δ| under "
                f"{NEGLIGIBLE:.0%} of {fmt_value(size, 3)})")
    return phrases.get(v.label, unclear)


def _size(*values: float | None) -> float | None:
    vals = [abs(v) for v in values if v is not None]
    return max(vals) if vals else None


def _c1(label: str, g: dict, sub: str = "tfsd") -> Row | None:
    if (got := _ce_minus(g, "norm_growth", sub)) is None:
        return None
    v, ce, tf = got
    say = _say(v, {"higher": "supported: CE's norm grows more than TFSD's",
                   "lower": "**refuted**: CE's norm grows less than TFSD's"},
               "not supported: no clear difference in norm growth", _size(ce, tf))
    if say.startswith("supported") and ce is not None and ce < EXPLOSION:
        say = (f"partly: CE's norm grows more than TFSD's, but only ×{fmt_value(ce, 3)}, "
               "not an explosion")
    return (f"{label}: ‖x‖ growth from initialisation, probe set",
            f"{say} (CE ×{fmt_value(ce, 3)}, TFSD ×{fmt_value(tf, 3)}; CE − TFSD "
            f"{v.interval})")


def _c2(label: str, g: dict, sub: str = "tfsd") -> Row | None:
    tf = [r["max_logit_train"] for r in g.get(sub, []) if r.get("max_logit_train") is not None]
    if not tf:
        return None
    ce = [r["max_logit_train"] for r in g.get(_BASE, []) if r.get("max_logit_train") is not None]
    top = max(tf)
    ce_txt = f"; CE's reached {fmt_value(max(ce), 3)}" if ce else ""
    say = "holds (by construction)" if top <= 1e-6 else "**refuted**"
    return (f"{label}: largest logit over training (health.max_logit)",
            f"{say}: TFSD's largest logit is {fmt_value(top, 3)} ≤ 0{ce_txt}. Bounded above "
            "only: the gap to the other classes is not bounded (see C3).")


def _c3(label: str, g: dict, sub: str = "tfsd") -> Row | None:
    runs = g.get(sub, [])
    syn = seed_stat(r.get("synonym_target") for r in runs)
    truth = seed_stat(r.get("synonym_truth") for r in runs)
    if syn is not None and truth is not None and truth[0] > 0:
        share = syn[0] / truth[0]
        single = seed_stat(r.get("single_target") for r in runs)
        v = paired_verdict(_by_seed(g, sub, "synonym_target"),
                           _by_seed(g, sub, "single_target"), "")
        flatter = v is not None and v.label == "higher"
        say = ("**refuted**: the target stays one-hot where the true law is spread"
               if share < FLAT_SHARE else
               "supported: flatter on synonym positions" if flatter else
               "not supported: not clearly flatter on synonym positions")
        return (f"{label}: TFSD target entropy H(p) on synonym positions vs the exact law",
                f"{say} (H(p) {syn[0]:.3g} nats = {share:.2%} of H(true) {truth[0]:.3g}; "
                f"determined positions {single[0] if single else float('nan'):.3g} nats"
                + (f"; synonym − determined {v.interval}" if v is not None else "") + ")")
    hard = seed_stat(r.get("hard_target") for r in runs)
    pred = seed_stat(r.get("hard_pred") for r in runs)
    if hard is None or pred is None:
        return None
    share = hard[0] / pred[0] if pred[0] > 0 else float("nan")
    say = ("**refuted**: the target of hard samples stays one-hot" if not share >= FLAT_SHARE
           else "partly: hard samples' targets carry entropy")
    return (f"{label}: TFSD target entropy of hard training samples (q_y < 0.5), last "
            "quarter of training", f"{say} (H(p) {hard[0]:.3g} nats against the "
            f"prediction's H(q) {pred[0]:.3g}, {share:.2%} of it)")


def _c5(label: str, g: dict, sub: str = "tfsd") -> Row | None:
    same = _pair(g, "auroc", "higher", sub)
    if same is None:
        return None
    own = paired_verdict({r["seed"]: r["auroc_by_score"].get("max_logit")
                          for r in g.get(sub, [])},
                         {r["seed"]: r["auroc_by_score"].get("msp") for r in g.get(_BASE, [])},
                         "higher")
    text = (f"MSP AUROC, TFSD − CE {same.interval}: {same.label}")
    if own is not None and sub in SUBJECTS:  # a distance head's own score
        text += (f"; TFSD's distance score (max logit = −s·min_j ‖x − c_j‖²) against CE's MSP "
                 f"{own.interval}: {own.label}")
    return f"{label}: OOD AUROC, the same score and each head's own", text


def _c6(label: str, g: dict, sub: str = "tfsd") -> Row | None:
    ratio = _pair(g, "grad_noisy_ratio", "lower", sub)
    if ratio is None:
        return None
    mem = _pair(g, "memorised", "lower", sub)
    rt, rc = _mean(g, sub, "grad_noisy_ratio"), _mean(g, _BASE, "grad_noisy_ratio")
    say = _say(ratio, {
        "better": "supported: flipped samples' gradients are smaller, relative to clean",
        "worse": "**refuted**: flipped samples' gradients are larger, relative to clean"},
        size=_size(rt, rc))
    text = (f"{say} (‖g‖ flipped/clean TFSD {fmt_value(rt, 3)}, CE {fmt_value(rc, 3)}; "
            f"{ratio.interval})")
    if mem is not None:
        text += (f"; memorised TFSD {fmt_value(_mean(g, sub, 'memorised'), 3)} vs CE "
                 f"{fmt_value(_mean(g, _BASE, 'memorised'), 3)} ({mem.interval}: {mem.label})")
    return f"{label}: per-sample feature gradient on flipped labels", text


def _c7(label: str, g: dict, sub: str = "tfsd") -> Row | None:
    if (got := _ce_minus(g, "classes_ratio", sub)) is None:
        return None
    v, ce, tf = got
    say = _say(v, {"higher": "supported: CE's groups end more spread (torn) than TFSD's",
                   "lower": "**refuted**: CE's groups end tighter than TFSD's"},
               size=_size(ce, tf))
    return (f"{label}: within/between-group distance of the class vectors at the end",
            f"{say} (CE {fmt_value(ce, 3)}, TFSD {fmt_value(tf, 3)}; CE − TFSD {v.interval})")


def _c8(label: str, g: dict, sub: str = "tfsd") -> Row | None:
    v = _pair(g, "classes_structure", "higher", sub)
    if v is None:
        return None
    say = _say(v, {"better": "supported: TFSD's class vectors follow the known similarity more",
                   "worse": "**refuted**: TFSD's class vectors follow it less"},
               size=1.0)  # ρ lies in [-1, 1]
    return (f"{label}: Spearman ρ of class-vector distances with the known similarity",
            f"{say} (ρ TFSD {fmt_value(_mean(g, sub, 'classes_structure'), 3)}, CE "
            f"{fmt_value(_mean(g, _BASE, 'classes_structure'), 3)}; {v.interval})")


_TESTS: dict[str, Callable[[str, dict], Row | None]] = {
    "C1": _c1, "C2": _c2, "C3": _c3, "C5": _c5, "C6": _c6, "C7": _c7, "C8": _c8}
# The claims a user objective is judged on: those comparing a measurement of any head with
# CE's. C2 (logits <= 0 by construction) and C3 (the zero-anchor target) are about TFSD's
# distance head and target only.
_GENERIC = ("C1", "C5", "C6", "C7", "C8")
_ELSEWHERE = {"C4": "`geomviz sweep --preset lm-spikes` (learning-rate sensitivity)",
              "C6": "`geomviz study --preset noise` (label noise)",
              "C7": "`geomviz study --preset lm-synonyms` (synonym sets)",
              "C8": "a dataset with class groups (`lm-synonyms`, `gaussians_hier`, CIFAR-100)"}


def subjects(groups: dict) -> dict[str, str]:
    """``{objective: row label}`` judged against CE: TFSD and its variants, then every
    user objective (a plugin, not a built-in) by its own name, so a user's loss goes
    through the same tests as TFSD."""
    from ..objectives import is_builtin

    out = {s: SUBJECTS[s] for s in SUBJECTS if s in groups}
    out.update({o: o for o in groups if o != "?" and not is_builtin(o)})
    return out


def claim_rows(parts: list[Part]) -> dict[str, list[Row]]:
    """``{claim: [(experiment, verdict), ...]}``, one row per part and subject
    (:func:`subjects`) that tests the claim."""
    out: dict[str, list[Row]] = {c: [] for c in CLAIMS}
    for label, records in parts:
        groups = group_records([r for r in records if r.get("status") == "finished"])
        for sub, suffix in subjects(groups).items():
            name = label if sub == _SUBJECT else f"{label}, {suffix}"
            user = sub not in SUBJECTS
            for claim, test in _TESTS.items():
                if user and claim not in _GENERIC:
                    continue
                row = test(name, groups, sub)
                if row is not None and user:  # the verdict names the user's objective
                    row = (row[0], row[1].replace("TFSD", sub))
                if row is not None:
                    out[claim].append(row)
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def claims_table(parts: list[Part], extra: dict[str, list[Row]] | None = None) -> str:
    """Markdown table C1–C8; ``extra`` adds rows measured elsewhere (e.g. a sweep)."""
    rows = claim_rows(parts)
    for claim, more in (extra or {}).items():
        rows[claim] = rows.get(claim, []) + list(more)
    n = sorted({len(group_records(recs).get(_SUBJECT, [])) for _, recs in parts} - {0})
    lines = ["| claim | experiment | verdict (TFSD, or the objective named, vs CE, paired "
             "seeds, 95% t-interval) |",
             "|---|---|---|"]
    for claim, text in CLAIMS.items():
        cell = rows.get(claim) or []
        if not cell:
            where = _ELSEWHERE.get(claim)
            lines.append(f"| {claim}: {text} | not tested by this preset"
                         f"{f'; see {where}' if where else ''} | – |")
        for exp, verdict in cell:  # a "|" inside a cell would split the Markdown row
            lines.append(f"| {claim}: {text} | {_cell(exp)} | {_cell(verdict)} |")
    seeds = "/".join(map(str, n)) or "0"
    note = (f"Seeds per objective: {seeds}. A verdict of better/worse needs the 95% t-interval "
            "of the mean paired difference to exclude 0; with 3 seeds (t = 4.30) the intervals "
            "are wide, so 'no clear difference' often means 'not enough seeds to tell'.")
    return "\n".join([*lines, "", note])


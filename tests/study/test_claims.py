"""The claims table: each verdict follows from hand-made records, either way."""

from __future__ import annotations

import pytest

from geomviz.study.claims import CLAIMS, claim_rows, claims_table
from geomviz.study.results import METRICS


def _rec(obj: str, seed: int, **values) -> dict:
    base = {m.key: None for m in METRICS}
    return {**base, "objective": obj, "seed": seed, "status": "finished",
            "auroc_by_score": {}, **values}


def _grid(key: str, ce: list[float], tfsd: list[float]) -> list[dict]:
    return [_rec("ce", s, **{key: v}) for s, v in enumerate(ce)] + \
        [_rec("tfsd", s, **{key: v}) for s, v in enumerate(tfsd)]


def _verdict(claim: str, records: list[dict]) -> str:
    (row,) = claim_rows([("data", records)])[claim]
    return row[1]


@pytest.mark.parametrize("ce, tfsd, word", [
    ([12.0, 13.0, 11.5], [6.0, 7.1, 5.4], "supported"),
    ([5.0, 6.0, 5.5], [9.0, 10.2, 9.4], "**refuted**"),
    ([8.0, 6.0, 7.0], [7.0, 7.5, 6.4], "not supported: no clear difference"),
])
def test_c1_norm_growth_either_way(ce, tfsd, word):
    text = _verdict("C1", _grid("norm_growth", ce, tfsd))
    assert text.startswith(word) and "95% CI" in text


def test_c1_small_growth_is_not_an_explosion():
    text = _verdict("C1", _grid("norm_growth", [1.10, 1.11, 1.09], [1.05, 1.05, 1.04]))
    assert text.startswith("partly: CE's norm grows more than TFSD's, but only ×1.1")


def test_c3_tokens_refuted_when_target_carries_no_entropy_supported_when_it_does():
    recs = [_rec("tfsd", s, synonym_target=1e-50, synonym_truth=1.1, single_target=1e-51)
            for s in range(3)]
    assert _verdict("C3", recs).startswith("**refuted**")
    flat = [_rec("tfsd", s, synonym_target=0.5 + s / 100, synonym_truth=1.1,
                 single_target=0.01) for s in range(3)]
    text = _verdict("C3", flat)
    assert text.startswith("supported") and "46.36% of H(true)" in text  # 0.51 / 1.1


def test_c6_c7_c8_directions():
    capped = _grid("grad_noisy_ratio", [3.0, 3.2, 2.9], [1.1, 1.0, 1.2])
    assert _verdict("C6", capped).startswith("supported")
    assert _verdict("C6", _grid("grad_noisy_ratio", [1.0, 1.1, 1.2], [3.0, 3.1, 3.3])) \
        .startswith("**refuted**")
    torn = _grid("classes_ratio", [0.9, 0.95, 0.92], [0.5, 0.55, 0.52])
    assert _verdict("C7", torn).startswith("supported")
    assert _verdict("C7", _grid("classes_ratio", [0.5, 0.55, 0.5], [0.9, 0.95, 0.92])) \
        .startswith("**refuted**")
    same = _grid("classes_structure", [0.6, 0.7, 0.65], [0.7, 0.6, 0.66])
    assert _verdict("C8", same).startswith("not supported: no clear difference")


def test_c2_refuted_by_a_positive_distance_logit():
    recs = _grid("max_logit_train", [40.0], [-3.0])
    assert _verdict("C2", recs).startswith("holds")
    assert _verdict("C2", _grid("max_logit_train", [40.0], [0.5])).startswith("**refuted**")


def test_one_seed_gives_no_verdict_and_untested_claims_say_so():
    text = _verdict("C1", _grid("norm_growth", [10.0], [5.0]))
    assert text.startswith("no verdict from one seed")
    table = claims_table([("data", _grid("norm_growth", [10.0, 11, 12], [5.0, 6, 7]))])
    for claim in CLAIMS:
        assert f"| {claim}: " in table
    assert table.count("not tested by this preset") == len(CLAIMS) - 1
    assert "Seeds per objective: 3" in table


def test_extra_rows_and_unfinished_runs():
    recs = _grid("norm_growth", [10.0, 11, 12], [5.0, 6, 7])
    recs[0]["status"] = "diverged"  # left out: CE seed 0 has no partner
    (row,) = claim_rows([("d", recs)])["C1"]
    assert "2 paired seeds" in row[1]
    table = claims_table([("d", recs)], extra={"C4": [("sweep", "refuted (numbers)")]})
    assert "| C4: fewer loss spikes in LLMs | sweep | refuted (numbers) |" in table


def test_clear_but_negligible_differences_support_nothing():
    # ρ 0.157 vs 0.158 on every seed: a clear interval, a 0.001 difference
    tiny = _grid("classes_structure", [0.158, 0.1585, 0.1578], [0.157, 0.1574, 0.1569])
    text = _verdict("C8", tiny)
    assert text.startswith("not supported: a clear but negligible difference") and "CI" in text
    table = claims_table([("d", tiny)])
    row = next(r for r in table.splitlines() if r.startswith("| C8"))
    assert row.replace("\\|", "").count("|") == 4  # 3 cells: a "|" in the text is escaped
    big = _grid("classes_structure", [0.30, 0.31, 0.29], [0.20, 0.22, 0.21])
    assert _verdict("C8", big).startswith("**refuted**")
    flat = _grid("classes_ratio", [0.900, 0.901, 0.902], [0.890, 0.892, 0.891])  # 1.1%
    assert "negligible" in _verdict("C7", flat)


def test_a_second_tfsd_variant_gets_its_own_rows():
    recs = _grid("norm_growth", [10.0, 11, 12], [5.0, 6, 7]) + \
        [_rec("tfsd_scaled", s, norm_growth=v) for s, v in enumerate([9.0, 10.5, 11.5])]
    rows = claim_rows([("d", recs)])["C1"]
    assert [r[0].split(":")[0] for r in rows] == ["d", "d, TFSD at s = 1/D"]

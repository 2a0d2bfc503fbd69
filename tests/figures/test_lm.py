"""The language-model figure builders on hand-made data: seed means and min-max bands, the
true law as one grey reference per panel, one colour per objective, titled axes."""

from __future__ import annotations

import numpy as np

from geomviz.figures import lm
from geomviz.figures.theme import objective_colors

COLORS = objective_colors(["ce", "tfsd"])
STEPS = np.array([0, 10, 20])


def _seeds(*rows):
    return [(STEPS, np.asarray(r, dtype=float)) for r in rows]


def test_tearing_mean_band_and_the_no_structure_line():
    fig = lm.tearing({"ce": _seeds([0.8, 0.7, 0.6], [0.9, 0.6, 0.5]),
                      "tfsd": _seeds([0.9, 0.9, 0.8])}, COLORS)
    ce = next(t for t in fig.data if t.name == "ce" and t.mode == "lines" and t.fill is None)
    np.testing.assert_allclose(ce.y, [0.85, 0.65, 0.55])
    band = next(t for t in fig.data if t.fill == "toself")
    np.testing.assert_allclose(band.y, [0.9, 0.7, 0.6, 0.5, 0.6, 0.8])  # max, then min reversed
    assert ce.line.color == COLORS["ce"]
    assert not any(t.fill == "toself" and t.legendgroup == "tfsd" for t in fig.data)  # 1 seed
    one = next(t for t in fig.data if (t.name or "").startswith("1:"))
    assert list(one.y) == [1.0, 1.0] and list(one.x) == [0, 20]
    assert "unitless" in fig.layout.yaxis.title.text and fig.layout.xaxis.title.text


def test_synonym_entropy_panels_and_reference():
    ent = {o: {"synonym.target": _seeds([0, 0, 0]), "synonym.pred": _seeds([3, 2, 1.5]),
               "synonym.truth": _seeds([1.1, 1.1, 1.1]), "single.target": _seeds([0, 0, 0]),
               "single.pred": _seeds([2, 1, 0.5]), "single.truth": _seeds([0, 0, 0])}
           for o in ("ce", "tfsd")}
    fig = lm.synonym_entropy(ent, COLORS)
    refs = [t for t in fig.data if (t.name or "").startswith("H(true)")]
    assert len(refs) == 2 and {t.xaxis for t in refs} == {"x", "x2"}  # once per panel
    assert all(t.line.color == lm.REFERENCE_COLOR and t.line.dash == "dash" for t in refs)
    np.testing.assert_allclose(refs[0].y, 1.1)
    preds = [t for t in fig.data if t.name == "tfsd" and t.line.dash == "solid"]
    assert len(preds) == 2 and all(t.line.color == COLORS["tfsd"] for t in preds)
    assert [fig.layout.xaxis.title.text, fig.layout.xaxis2.title.text] == ["training step"] * 2
    assert fig.layout.yaxis.title.text == "entropy (nats)"


def test_class_vector_grid_rows_columns_and_shared_column_ranges():
    g = np.random.default_rng(0)
    panels = {o: {"steps": [0, 5, 9], "xy": g.standard_normal((3, 12, 2)),
                  "groups": np.repeat(np.arange(4), 3), "ids": np.arange(12)} for o in COLORS}
    ranges = [((-3, 3), (-2, 2))] * 3
    fig = lm.class_vectors(panels, ranges, [f"t{i}" for i in range(12)])
    assert len(fig.data) == 6  # 2 objectives × 3 steps
    texts = [a.text for a in fig.layout.annotations]
    assert texts[:3] == ["step 0", "step 5", "step 9"] and set(texts[3:]) == {"ce", "tfsd"}
    np.testing.assert_array_equal(fig.data[0].marker.color, np.repeat(np.arange(4), 3))
    assert fig.data[0].text[4] == "t4 (set 1)"
    assert list(fig.layout.xaxis.range) == [-3, 3] and list(fig.layout.xaxis4.range) == [-3, 3]
    assert fig.layout.xaxis4.title.text == "PC1 (vector units)"
    assert fig.layout.yaxis.title.text == "PC2 (vector units)"

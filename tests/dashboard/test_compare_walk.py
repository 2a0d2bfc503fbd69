"""What a first walk through the compare page found: the two sides' OOD histograms on one
share-of-samples scale, ..."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("dash")


def test_ood_histograms_share_the_score_and_the_share_of_samples_axes():
    from geomviz import figures as F
    from geomviz.dashboard.pages.compare_extras import share_ood_scales

    g = np.random.default_rng(0)
    peaked = [np.r_[np.full(900, 0.99), g.uniform(0.2, 1, 100)], g.uniform(0.2, 1, 300)]
    spread = [g.uniform(0.1, 0.9, 1000), g.uniform(0.1, 0.9, 300)]
    figs = [F.ood_scores(i, o, "msp") for i, o in (peaked, spread)]
    share_ood_scales(figs)
    x = [tuple(f.layout.xaxis.range) for f in figs]
    y = [tuple(f.layout.yaxis.range) for f in figs]
    assert x[0] == x[1] == pytest.approx((0.1, 1.0), abs=0.01)
    assert y[0] == y[1]
    # the tallest bar (90% of the peaked side's ID scores in the last bin) fits, just
    assert 0.9 <= y[0][1] <= 0.9 * 1.1
    assert figs[0].data[0].xbins.size == figs[1].data[0].xbins.size

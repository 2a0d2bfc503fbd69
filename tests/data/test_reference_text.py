"""Frequency buckets against their definition over random targets: rank the tokens by count
(ties by token id, unseen and ignored targets count 0), the first ceil(V/10) are "top" (0),
the last floor(V/2) "rarest" (2), the rest "middle" (1)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from geomviz.data.text import frequency_buckets


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.data())
def test_frequency_buckets_follow_the_ranking(vocab, data):
    y = np.array(data.draw(st.lists(st.one_of(st.integers(0, vocab - 1), st.just(-100)),
                                    max_size=80)), dtype=np.int64)
    counts = {t: int((y == t).sum()) for t in range(vocab)}
    ranked = sorted(range(vocab), key=lambda t: (-counts[t], t))  # most frequent first
    top, rare = math.ceil(vocab / 10), vocab // 2
    want = [1] * vocab
    for t in ranked[:top]:
        want[t] = 0
    for t in ranked[vocab - rare:]:
        want[t] = 2
    assert frequency_buckets(y, vocab) == want
    assert frequency_buckets(y.reshape(1, -1), vocab) == want  # any target shape

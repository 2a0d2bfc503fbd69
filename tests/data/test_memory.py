"""The memory estimate of the synonym language, checked before anything is allocated (issue
25 row 7: --train-tokens 1e15 ended in a MemoryError traceback asking numpy for 114 TiB)."""

from __future__ import annotations

import pytest

from geomviz.data import DataError
from geomviz.data import memory as mem
from geomviz.data.synonyms import check_sizes, synonyms


def test_the_estimate_counts_each_part_and_grows_with_the_sizes():
    base = mem.synonyms_memory()
    assert base["total"] == base["chains"] + max(base["generation"],
                                                 base["tokens"] + base["law"])
    more = mem.synonyms_memory(train_tokens=2 * 262_144)
    assert more["tokens"] > base["tokens"] and more["generation"] > base["generation"]
    assert more["law"] == base["law"]
    wide = mem.synonyms_memory(concepts=200, vocab_size=400, order=1)
    assert wide["law"] == 5 * 200 * 200 * 8  # the dense C x C table, five copies (order 1)
    # by hand: 16384 training tokens of seq_len 64 are 256 sequences of 65 int32 + int64 tokens
    small = mem.synonyms_memory(train_tokens=16_384, test_tokens=64 * 4)
    assert small["tokens"] == (256 + 2 * 4) * 65 * 12


def test_sizes_that_cannot_fit_are_one_line_with_the_estimate(monkeypatch):
    with pytest.raises(DataError) as e:
        check_sizes(256, 96, 4, 2, "uniform", 64, 10**15, 16_384)
    msg = str(e.value)
    assert "\n" not in msg and "PiB of memory" in msg and "--train-tokens" in msg
    with pytest.raises(DataError, match=r"TiB of memory .* lower --concepts"):
        check_sizes(1_000_000, 250_000, 4, 1, "uniform", 64, 262_144, 16_384)
    # against the machine's memory: a machine of 1 MiB refuses even the default language
    monkeypatch.setattr(mem, "host_memory", lambda: 2**20)
    with pytest.raises(DataError, match="this machine has 1.0 MiB"):
        synonyms()
    monkeypatch.setattr(mem, "host_memory", lambda: None)  # unknown: nothing is refused
    assert check_sizes(256, 96, 4, 2, "uniform", 64, 2048, 2048) == (32, 32)


def test_host_memory_and_units():
    have = mem.host_memory()
    assert have is None or have > 2**26
    assert mem.format_bytes(512) == "512 B"
    assert mem.format_bytes(3.5 * 2**30) == "3.5 GiB"
    assert mem.format_bytes(114 * 2**40) == "114 TiB"

"""The text dataset: byte-level BPE round trip, the byte tokenizer, the split and the windows,
the cache by content hash, and one clear line for each bad input."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geomviz.data import DataError
from geomviz.data import text as text_module
from geomviz.data.text import (
    MIN_BPE_VOCAB,
    decode,
    frequency_buckets,
    render_token,
    text,
    token_bytes,
)

tokenizers = pytest.importorskip("tokenizers")

LICENSES = sorted(Path("/usr/share/common-licenses").glob("*"))
MIXED = ("Grüße aus Köln — naïve café, 日本語のテキスト, emoji 🙂🚀, tabs\tand\r\nCRLF.\n"
         "The quick brown fox jumps over the lazy dog; ¿qué tal? Ελληνικά, русский.\n\n")


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))


def _corpus(path: Path, repeat: int = 60) -> str:
    """Real English (a licence text where present) mixed with non-ASCII lines."""
    english = LICENSES[0].read_text(encoding="utf-8")[:8000] if LICENSES else ""
    body = "".join(f"{i}: {MIXED}" for i in range(repeat)) + english
    path.write_bytes(body.encode("utf-8"))
    return body


def _stream(x: torch.Tensor, y: torch.Tensor) -> list[int]:
    """The token stream the windows were cut from (up to the last target)."""
    return x.reshape(-1).tolist() + y[-1:, -1].tolist()


def test_bpe_round_trip_windows_and_split(tmp_path):
    f = tmp_path / "corpus.txt"
    body = _corpus(f)
    b = text(str(f), vocab_size=400, seq_len=16, test_fraction=0.2)
    assert (b.name, b.kind, b.truth, b.ood_name) == ("text", "tokens", None, None)
    v = b.info["vocab_size"]
    assert v == len(b.class_names) == 400 and len(set(b.class_names)) == v
    tok = tokenizers.Tokenizer.from_file(b.info["tokenizer_file"])
    for s in (MIXED, "ünïcödé only \x00\x7f\u200b", body[:3000]):
        assert tok.decode(tok.encode(s).ids) == s  # lossless byte-level round trip
    pieces = token_bytes(tok)
    assert [render_token(p) for p in pieces] == b.class_names
    cut = len(body) - int(len(body) * 0.2)  # the last 20% of the characters is the test block
    for (x, y), part in (((b.x_train, b.y_train), body[:cut]), ((b.x_test, b.y_test), body[cut:])):
        assert x.dtype == torch.int64 and x.shape[1] == 16
        assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
        assert torch.equal(x[1:, 0], y[:-1, -1])  # stride seq_len: every token a target once
        got = b"".join(pieces[i] for i in _stream(x, y))
        assert part.encode("utf-8").startswith(got) and len(got) > 0.9 * len(part.encode())
    assert decode(b, tok.encode(MIXED).ids) == MIXED
    assert b.info["train_tokens"] == b.y_train.numel() and b.info["test_tokens"] == b.y_test.numel()
    assert b.info["source"].startswith("corpus.txt sha256:")


def test_bytes_tokenizer_is_the_utf8_bytes(tmp_path):
    f = tmp_path / "corpus.txt"
    body = _corpus(f, repeat=10)
    b = text(str(f), tokenizer="bytes", seq_len=32)
    assert b.info["vocab_size"] == 256 == len(b.class_names) == len(set(b.class_names))
    assert b.class_names[ord("a")] == "a" and b.class_names[32] == "␣"
    assert b.class_names[10] == "\\n" and b.class_names[0xC3] == "\\xc3"
    cut = len(body) - int(len(body) * 0.1)
    data = body[:cut].encode("utf-8")
    stream = _stream(b.x_train, b.y_train)
    assert bytes(stream) == data[: len(stream)]
    assert decode(b.info, bytes(body[cut:].encode())[:40]) == body[cut:].encode()[:40].decode(
        "utf-8", errors="replace")


def test_byte_alphabet_matches_the_tokenizers_byte_level():
    alphabet = text_module._byte_alphabet()
    assert set(alphabet) == set(tokenizers.pre_tokenizers.ByteLevel.alphabet())
    assert sorted(alphabet.values()) == list(range(256))


def test_render_token_is_printable_and_distinct():
    assert render_token(b" the") == "␣the"
    assert render_token(b"\n\t\r") == "\\n\\t\\r"
    assert render_token("é".encode()) == "é" and render_token(b"\xc3") == "\\xc3"
    assert render_token(b"a\\b") == "a\\\\b"
    assert render_token("\u0085".encode()) == "\\u0085" != render_token(b"\x85")
    assert render_token("\u200b".encode()) == "\\u200b"
    every = [render_token(bytes([i])) for i in range(256)]
    assert len(set(every)) == 256 and all(s.isprintable() for s in every)


def test_frequency_buckets_by_hand():
    y = np.array([[3, 3, 3, 3, 1, 1, 1, 0, 0, 5], [3, 1, 0, 2, -100, 3, 1, 3, 0, 2]])
    # counts: 3 -> 7, 1 -> 5, 0 -> 4, 2 -> 2, 5 -> 1, 4 and the rest -> 0 (ignored -100)
    got = frequency_buckets(y, 10)
    assert got[3] == 0 and sum(g == 0 for g in got) == 1  # top 10% of 10 tokens
    assert sum(g == 2 for g in got) == 5 and all(got[t] == 2 for t in (4, 6, 7, 8, 9))
    assert [got[t] for t in (1, 0, 2, 5)] == [1, 1, 1, 1]


def test_deterministic_and_cached_by_content_hash(tmp_path, monkeypatch):
    f = tmp_path / "corpus.txt"
    _corpus(f, repeat=20)
    a = text(str(f), vocab_size=300, seq_len=16)
    cache = tmp_path / "cache" / "text"
    first = sorted(p.name for p in cache.iterdir())
    assert len(first) == 2 and not any(".tmp" in n for n in first)
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "other"))
    b = text(str(f), vocab_size=300, seq_len=16)  # retrained elsewhere: the same
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.x_test, b.x_test)
    assert a.class_names == b.class_names and a.info["freq_bucket"] == b.info["freq_bucket"]
    monkeypatch.setenv("GEOMVIZ_CACHE", str(tmp_path / "cache"))

    def boom(*_, **__):
        raise AssertionError("retrained although cached")
    with monkeypatch.context() as m:
        m.setattr(text_module, "_train_bpe", boom)
        hit = text(str(f), vocab_size=300, seq_len=16)
    assert torch.equal(hit.x_train, a.x_train)
    f.write_text(f.read_text(encoding="utf-8") + "one more line\n", encoding="utf-8")
    edited = text(str(f), vocab_size=300, seq_len=16)  # new content, new key
    assert len(list(cache.iterdir())) == 4 and edited.info["source"] != a.info["source"]
    for p in cache.iterdir():  # a damaged cache is rebuilt
        p.write_bytes(b"garbage")
    again = text(str(f), vocab_size=300, seq_len=16)
    assert torch.equal(again.x_train, edited.x_train) and again.class_names == edited.class_names


def test_ood_file_uses_the_same_tokenizer(tmp_path):
    f, g = tmp_path / "corpus.txt", tmp_path / "other.md"
    _corpus(f, repeat=20)
    other = "Ein ganz anderer Text über Bäume und Flüsse.\n" * 40
    g.write_text(other, encoding="utf-8")
    b = text(str(f), ood_path=str(g), vocab_size=300, seq_len=16)
    assert b.ood_name == "other.md" and b.x_ood.shape[1] == 16 and b.x_ood.max() < 300
    assert other.startswith(decode(b, b.x_ood.reshape(-1))[:-2])
    again = text(str(f), ood_path=str(g), vocab_size=300, seq_len=16)  # from the cache
    assert torch.equal(again.x_ood, b.x_ood)


def _one_line(call) -> str:
    with pytest.raises(DataError) as e:
        call()
    msg = str(e.value)
    assert msg and "\n" not in msg
    return msg


def test_each_bad_input_is_one_clear_line(tmp_path, monkeypatch):
    good = tmp_path / "good.txt"
    _corpus(good, repeat=5)
    assert "no such file" in _one_line(lambda: text(str(tmp_path / "missing.txt")))
    assert "directory" in _one_line(lambda: text(str(tmp_path)))
    (tmp_path / "empty.txt").write_bytes(b"")
    assert "empty" in _one_line(lambda: text(str(tmp_path / "empty.txt")))
    (tmp_path / "latin1.txt").write_bytes(b"hello\xffworld")
    msg = _one_line(lambda: text(str(tmp_path / "latin1.txt")))
    assert "UTF-8" in msg and "byte offset 5" in msg
    msg = _one_line(lambda: text(str(good), vocab_size=200))
    assert str(MIN_BPE_VOCAB) in msg and "byte alphabet" in msg
    (tmp_path / "short.txt").write_text("far too short", encoding="utf-8")
    assert "too short" in _one_line(lambda: text(str(tmp_path / "short.txt"), seq_len=64))
    assert "too short" in _one_line(
        lambda: text(str(good), ood_path=str(tmp_path / "short.txt"), vocab_size=300))
    assert "no such file" in _one_line(
        lambda: text(str(good), ood_path=str(tmp_path / "nope.txt")))
    assert "tokenizer" in _one_line(lambda: text(str(good), tokenizer="words"))
    assert "test_fraction" in _one_line(lambda: text(str(good), test_fraction=1.0))
    monkeypatch.setitem(sys.modules, "tokenizers", None)  # not installed
    assert "pip install tokenizers" in _one_line(lambda: text(str(good), vocab_size=300))
    assert text(str(good), tokenizer="bytes", seq_len=8).info["vocab_size"] == 256


def test_long_runs_without_whitespace_are_cut_for_the_bpe(tmp_path, capfd):
    """Issue 25 row 12: a 3 MB line without whitespace was one BPE "word" and training ran
    for over 420 s (about quadratic in the word). Runs are cut at MAX_WORD characters, for
    training and encoding alike; the text still round-trips, and the training says so."""
    import random
    import time

    from geomviz.data.text import MAX_WORD

    g = random.Random(0)
    line = "".join(g.choice("abcdefghij") for _ in range(100_000))  # letters only: one "word"
    f = tmp_path / "one-line.txt"
    f.write_text(line + "\n" + _CORPUS_TAIL)
    t0 = time.perf_counter()
    b = text(str(f), vocab_size=600, seq_len=16, progress=True)
    took = time.perf_counter() - t0
    assert "training a BPE tokenizer (vocabulary 600)" in capfd.readouterr().err
    tok = tokenizers.Tokenizer.from_file(b.info["tokenizer_file"])
    words = tok.pre_tokenizer.pre_tokenize_str(line[:1000])
    assert max(len(w) for w, _ in words) <= MAX_WORD and "".join(w for w, _ in words) == line[
        :1000]
    normal = tok.pre_tokenizer.pre_tokenize_str("a sentence of ordinary words, unchanged.")
    assert [w for w, _ in normal] == ["a", "Ġsentence", "Ġof", "Ġordinary", "Ġwords", ",",
                                      "Ġunchanged", "."]
    assert tok.decode(tok.encode(line[:5000]).ids) == line[:5000]
    assert took < 60  # unbounded, this line alone took 4.3 s of BPE training, 3 MB > 420 s


_CORPUS_TAIL = "a few ordinary words close the file, so both parts have text.\n" * 40

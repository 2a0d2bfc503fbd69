"""``text``: any UTF-8 file as next-token windows, tokenised by a byte-level BPE trained
offline on the training part (Hugging Face ``tokenizers``) or by raw UTF-8 bytes.

The last ``test_fraction`` of the characters is the test block, the rest trains (contiguous
blocks, so no test sentence leaks into training). Each block is tokenised on its own and cut
into non-overlapping windows of ``seq_len + 1`` tokens with stride ``seq_len``: every token
after a window's first is a target exactly once. The tokenizer and the token streams are
cached under :func:`cache_dir` by the file's sha256 and the settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .base import DataBundle, DataError, cache_dir

__all__ = ["text", "decode", "frequency_buckets", "token_bytes", "render_token",
           "MIN_BPE_VOCAB", "TEXT_VERSION", "MAX_WORD"]

TEXT_VERSION = "text-v2"  # bump whenever tokenisation changes: it is part of the cache key
MAX_WORD = 64  # longest run of non-whitespace characters the BPE sees as one word
MIN_BPE_VOCAB = 257  # the 256-byte alphabet plus at least one merge
_CHUNK = 1 << 16  # characters per piece handed to the tokenizer (cut after a newline)


def frequency_buckets(targets: np.ndarray | Tensor, vocab_size: int) -> list[int]:
    """Per token id: 0 for the 10% most frequent tokens among ``targets``, 2 for the rarest
    50%, 1 between (ties by token id; unseen tokens are rarest). Used by frequency probes."""
    y = np.asarray(targets).ravel()
    counts = np.bincount(y[(y >= 0) & (y < vocab_size)], minlength=vocab_size)
    order = np.argsort(-counts, kind="stable")  # most frequent first
    bucket = np.ones(vocab_size, dtype=np.int64)
    bucket[order[vocab_size - vocab_size // 2:]] = 2
    bucket[order[: -(-vocab_size // 10)]] = 0
    return bucket.tolist()


def _byte_alphabet() -> dict[str, int]:
    """The byte-level BPE's printable stand-in for each byte (GPT-2's ``bytes_to_unicode``,
    as ``tokenizers``' ByteLevel uses it), inverted: character -> byte."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def token_bytes(tokenizer) -> list[bytes]:
    """The bytes each id of a byte-level BPE ``tokenizer`` stands for."""
    alphabet = _byte_alphabet()
    return [bytes(alphabet[ch] for ch in tokenizer.id_to_token(i))
            for i in range(tokenizer.get_vocab_size())]


_ESCAPES = {" ": "␣", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def render_token(raw: bytes) -> str:
    """A printable, distinct name for a token's bytes: spaces as ␣, newlines and tabs as
    ``\\n`` and ``\\t``, bytes that are not whole UTF-8 (and ASCII controls) as ``\\xNN``,
    other control or invisible characters as ``\\uNNNN``."""
    out = []
    for ch in raw.decode("utf-8", errors="surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:  # a byte that is not (a whole) UTF-8 character
            out.append(f"\\x{o - 0xDC00:02x}")
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif unicodedata.category(ch).startswith("C"):
            out.append(f"\\x{o:02x}" if o < 0x80 else f"\\u{o:04x}")  # \\x stays for lone bytes
        else:
            out.append(ch)
    return "".join(out)


def _tokenizers():
    # the BPE trains before any fork (DDP, workers): its thread pool need not warn about it
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        import tokenizers
    except ImportError:
        raise DataError("tokenizer='bpe' needs Hugging Face tokenizers: pip install tokenizers "
                        "(or use tokenizer='bytes')") from None
    return tokenizers


def _read(path: str | os.PathLike, what: str) -> tuple[str, str]:
    """The file's text and sha256, or one clear DataError line."""
    p = Path(path)
    if not p.exists():
        raise DataError(f"{what} {p}: no such file")
    if p.is_dir():
        raise DataError(f"{what} {p}: is a directory, not a text file")
    raw = p.read_bytes()
    if not raw:
        raise DataError(f"{what} {p}: the file is empty")
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{what} {p}: not UTF-8 text (byte 0x{raw[e.start]:02x} at byte offset "
                        f"{e.start})") from None
    return content, hashlib.sha256(raw).hexdigest()


def _pieces(content: str) -> Iterator[str]:
    """``content`` in pieces of about ``_CHUNK`` characters, each ending after a newline."""
    i = 0
    while i < len(content):
        j = content.find("\n", i + _CHUNK)
        j = len(content) if j < 0 else j + 1
        yield content[i:j]
        i = j


def _train_bpe(content: str, vocab_size: int, progress: bool | None = None):
    """A byte-level BPE trained on ``content``. Runs of more than :data:`MAX_WORD` characters
    without whitespace are cut into pieces of that length before the byte-level split (the
    saved tokenizer keeps the rule, so encoding cuts them alike): BPE training is about
    quadratic in a word's length, and one 3 MB line without whitespace ran for over 420 s
    (100,000 characters: 4.3 s unbounded, 0.22 s cut). ``progress`` (default: stderr is a
    terminal) shows the tokenizers library's progress bars, on stderr."""
    tk = _tokenizers()
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.Sequence([
        tk.pre_tokenizers.Split(tk.Regex(rf"\S{{{MAX_WORD}}}"), behavior="isolated"),
        tk.pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = tk.decoders.ByteLevel()
    show = sys.stderr.isatty() if progress is None else bool(progress)
    trainer = tk.trainers.BpeTrainer(vocab_size=vocab_size, show_progress=show,
                                     initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet())
    pieces = list(_pieces(content))
    if show:
        print(f"training a BPE tokenizer (vocabulary {vocab_size}) on {len(content):,} "
              "characters", file=sys.stderr, flush=True)
    tok.train_from_iterator(pieces, trainer=trainer, length=len(pieces))
    return tok


def _encode(tok, content: str) -> np.ndarray:
    """Token ids ``[n]`` (int32); ``tok=None`` means raw UTF-8 bytes."""
    if tok is None:
        return np.frombuffer(content.encode("utf-8"), dtype=np.uint8).astype(np.int32)
    batch = getattr(tok, "encode_batch_fast", tok.encode_batch)  # _fast: no offsets (0.20+)
    ids = [e.ids for e in batch(list(_pieces(content)), add_special_tokens=False)]
    return np.fromiter((i for piece in ids for i in piece), dtype=np.int32)


def windows(ids: np.ndarray, seq_len: int) -> tuple[Tensor, Tensor]:
    """Non-overlapping windows of ``seq_len + 1`` tokens, stride ``seq_len``: inputs and
    next-token targets, int64 ``[N, seq_len]`` each."""
    n = max((len(ids) - 1) // seq_len, 0)
    idx = np.arange(n)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]  # [N, T+1]
    w = torch.from_numpy(ids[idx].astype(np.int64)).reshape(n, seq_len + 1)
    return w[:, :-1], w[:, 1:]


def _atomic(path: Path, write) -> None:
    """Write through a temporary file in ``path``'s folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)  # atomic: concurrent runs never read half a file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _save_ids(path: Path, **arrays: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, version=np.array(TEXT_VERSION), **arrays)
    _atomic(path, write)


def _load_ids(path: Path) -> dict | None:
    try:
        with np.load(path, allow_pickle=False) as f:
            raw = {k: f[k] for k in f.files}
        return raw if str(raw.pop("version")) == TEXT_VERSION else None
    except Exception:  # noqa: BLE001 - missing or damaged: rebuilt by the caller
        return None


def text(path: str, ood_path: str | None = None, tokenizer: str = "bpe", vocab_size: int = 4096,
         seq_len: int = 64, test_fraction: float = 0.1,
         progress: bool | None = None) -> DataBundle:
    """Windows of ``path``'s tokens (module docstring); ``ood_path``'s windows as OOD.
    ``progress``: show the BPE training's progress on stderr (default: on a terminal)."""
    if tokenizer not in ("bpe", "bytes"):
        raise DataError(f"tokenizer must be bpe or bytes, got {tokenizer!r}")
    vocab_size = 4096 if vocab_size is None else int(vocab_size)
    if tokenizer == "bpe" and vocab_size < MIN_BPE_VOCAB:
        raise DataError(f"vocab_size {vocab_size} is smaller than the byte alphabet: a BPE needs "
                        f"at least {MIN_BPE_VOCAB} (256 bytes + 1 merge); tokenizer='bytes' "
                        "gives 256")
    if seq_len < 1:
        raise DataError(f"seq_len must be >= 1, got {seq_len}")
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction must be in (0, 1), got {test_fraction}")
    content, sha = _read(path, "text data")
    ood = _read(ood_path, "text OOD data") if ood_path is not None else None
    if tokenizer == "bpe":
        _tokenizers()
    settings = {"sha256": sha, "tokenizer": tokenizer, "seq_len": seq_len,
                "test_fraction": test_fraction, "version": TEXT_VERSION,
                "vocab_size": vocab_size if tokenizer == "bpe" else 256}
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]
    folder = cache_dir() / "text"
    tok_file, ids_file = folder / f"text-{key}.tokenizer.json", folder / f"text-{key}.npz"
    cut = len(content) - int(len(content) * test_fraction)  # a character boundary
    tok, ids = None, _load_ids(ids_file)
    if tokenizer == "bpe":
        try:
            tok = _tokenizers().Tokenizer.from_file(str(tok_file)) if ids is not None else None
        except Exception:  # noqa: BLE001 - a damaged tokenizer file is retrained
            tok = None
        if tok is None:
            ids = None
            tok = _train_bpe(content[:cut], vocab_size, progress)
            _atomic(tok_file, lambda tmp: tok.save(tmp))
    if ids is None:
        ids = {"train": _encode(tok, content[:cut]), "test": _encode(tok, content[cut:])}
        _save_ids(ids_file, **ids)
    x, y = windows(ids["train"], seq_len)
    xt, yt = windows(ids["test"], seq_len)
    if len(x) == 0 or len(xt) == 0:
        raise DataError(f"text data {path}: too short for seq_len {seq_len}: its train part has "
                        f"{len(ids['train'])} tokens and its test part {len(ids['test'])}; "
                        f"each needs at least {seq_len + 1}")
    x_ood = ood_name = None
    if ood is not None:
        ood_file = folder / f"text-{key}-ood-{ood[1][:24]}.npz"
        got = _load_ids(ood_file)
        if got is None:
            got = {"ood": _encode(tok, ood[0])}
            _save_ids(ood_file, **got)
        x_ood, _ = windows(got["ood"], seq_len)
        if len(x_ood) == 0:
            raise DataError(f"text OOD data {ood_path}: too short for seq_len {seq_len}: "
                            f"{len(got['ood'])} tokens, need at least {seq_len + 1}")
        ood_name = Path(ood_path).name
    pieces = token_bytes(tok) if tok is not None else [bytes([b]) for b in range(256)]
    v = len(pieces)
    info = {"vocab_size": v, "seq_len": seq_len, "tokenizer": tokenizer,
            "source": f"{Path(path).name} sha256:{sha}", "freq_bucket": frequency_buckets(y, v),
            "train_tokens": int(y.numel()), "test_tokens": int(yt.numel()),
            "tokenizer_file": str(tok_file) if tok is not None else None}
    return DataBundle(name="text", x_train=x, y_train=y, x_test=xt, y_test=yt,
                      class_names=[render_token(b) for b in pieces], kind="tokens",
                      x_ood=x_ood, ood_name=ood_name, info=info)


def decode(source: DataBundle | dict, ids) -> str:
    """The text of token ``ids`` for a ``text`` bundle (or its ``info``): bytes are decoded as
    UTF-8 (invalid pieces become U+FFFD); a BPE is reloaded from the cached tokenizer file."""
    info = source.info if isinstance(source, DataBundle) else source
    ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    if info.get("tokenizer") == "bytes":
        return bytes(ids).decode("utf-8", errors="replace")
    if not info.get("tokenizer_file"):
        raise DataError("decode needs a text bundle's info (tokenizer and tokenizer_file)")
    try:
        tok = _tokenizers().Tokenizer.from_file(info["tokenizer_file"])
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - the cache may have been cleared since
        raise DataError(f"cannot read the tokenizer {info['tokenizer_file']}; reload the "
                        "dataset to rebuild it") from None
    return tok.decode(ids)

"""Memory a generated dataset needs, estimated from its sizes before anything is allocated.

Why: ``--train-tokens 1000000000000000`` or ``--concepts 250000 --order 1`` asked numpy for
114 TiB or 466 GiB and ended in a MemoryError traceback after the run had started. The
estimate counts the host arrays the ``synonyms`` language holds at its peak (see
:func:`synonyms_memory`); it leaves out the model, the optimizer and evaluation buffers
(those are bounded per chunk), so a run refused by it could never have fit, and a run it
passes may still need more.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import DataError

__all__ = ["host_memory", "format_bytes", "synonyms_memory", "check_synonyms_memory"]

MAX_SUCCESSORS = 4  # as geomviz.data.synonyms: successor concepts per chain row


def host_memory() -> int | None:
    """Bytes of memory this process may use: the machine's physical memory, or a smaller
    cgroup (container) limit; None where neither can be read."""
    total = None
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    for limit in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(limit).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and (total is None or int(text) < total):
            total = int(text)
        break
    return total


def format_bytes(n: float) -> str:
    """``n`` bytes with a binary unit: 512 B, 3.2 GiB, 114 TiB."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" or n >= 100 else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def synonyms_memory(vocab_size: int = 256, concepts: int = 96, max_synonyms: int = 4,
                    order: int = 2, seq_len: int = 64, train_tokens: int = 262_144,
                    test_tokens: int = 32_768) -> dict[str, int]:
    """Peak host bytes of generating and loading the synonym language, by part:

    * ``generation``: per split (train, test, OOD) the emission step holds, per token,
      its concept (int64), a uniform draw (float64), the ``[K]`` cumulative emission law
      gathered at it (float64) and its comparison (bool) and the int32 result, beside the
      int32 tokens of the splits made before it;
    * ``tokens``: the three splits as int32 (generated or cached) and as int64 tensors;
    * ``law``: the dense transition table ``C^order × C`` (float64), four copies at once
      while the law, its position-0 law and the stationary facts are computed (five for
      order 1, whose position-0 law is the table again);
    * ``chains``: the two sparse chains (successors and weights, ``C^order × 4``), with
      their draw's temporaries.

    The peak is ``chains + max(generation, tokens + law)``; ``total`` holds it. Against
    the measured peak resident memory of :func:`geomviz.data.synonyms.synonyms` (fresh
    cache) it was 0.9-1.1× on six sizes from the default to 8M tokens, 2000 concepts
    (order 1) and 256 concepts (order 2).
    """
    seq = max(seq_len, 1)
    width = seq + 1
    n_train, n_test = train_tokens // seq, test_tokens // seq
    k = max(1, min(max_synonyms, vocab_size - concepts + 1))  # the largest synonym set
    rows = concepts ** order
    m = min(MAX_SUCCESSORS, concepts)
    held = gen = 0
    for n in (n_train, n_test, n_test):
        gen = max(gen, held + n * width * (8 + 8 + 9 * k + 4))
        held += n * width * 4
    parts = {"generation": gen, "tokens": (n_train + 2 * n_test) * width * (4 + 8),
             "law": (4 + (order == 1)) * rows * concepts * 8,
             "chains": 2 * rows * m * 16 + rows * (8 * 8 + (16 * concepts if concepts <= 32
                                                            else 5 * 8 * m))}
    parts["total"] = parts["chains"] + max(parts["generation"], parts["tokens"] + parts["law"])
    return parts


def check_synonyms_memory(**sizes: int) -> dict[str, int]:
    """:func:`synonyms_memory` of ``sizes``, or a :class:`DataError` line with the estimate
    where it exceeds :func:`host_memory`."""
    est = synonyms_memory(**sizes)
    have = host_memory()
    if have is not None and est["total"] > have:
        biggest = max(("generation", "tokens", "law"), key=est.__getitem__)
        what = {"generation": "--train-tokens / --test-tokens", "tokens":
                "--train-tokens / --test-tokens", "law": "--concepts (or --order)"}[biggest]
        raise DataError(f"synonyms: these sizes need about {format_bytes(est['total'])} of "
                        f"memory (estimated before allocating: tokens "
                        f"{format_bytes(est['tokens'])}, generation peak "
                        f"{format_bytes(est['generation'])}, law tables "
                        f"{format_bytes(est['law'])}; the model not counted) and this machine "
                        f"has {format_bytes(have)}; lower {what}")
    return est

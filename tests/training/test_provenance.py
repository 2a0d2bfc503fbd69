"""Provenance: the code a process loaded, not the checkout's state at each later run."""

from __future__ import annotations

import torch

from geomviz.training import provenance as P


def test_every_run_of_a_process_records_the_commit_it_started_with(monkeypatch):
    P._process_git.cache_clear()
    states = iter([{"commit": "a" * 40, "dirty": False}, {"commit": "b" * 40, "dirty": True}])
    monkeypatch.setattr(P, "git_commit", lambda: next(states))
    first = P.provenance(torch.device("cpu"))["git"]
    second = P.provenance(torch.device("cpu"))["git"]  # a commit landed in between
    assert first == second == {"commit": "a" * 40, "dirty": False}
    P._process_git.cache_clear()


def test_git_commit_reads_this_checkout_or_none(tmp_path):
    got = P.git_commit()
    assert got is None or (len(got["commit"]) == 40 and isinstance(got["dirty"], bool))
    assert P.git_commit(tmp_path) is None  # not a checkout

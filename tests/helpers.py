"""Test helpers: float64 references, an allocation tracker, and raw store edits."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import strategies as st
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode


def literal_tfsd(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The TFSD definition, literally, per row: KL(softmax(z with z_y := 0).detach() || q)."""
    zp = z.detach().clone()
    zp[torch.arange(z.shape[0]), y] = 0.0
    p = torch.softmax(zp, dim=1)
    log_q = torch.log_softmax(z, dim=1)
    return (torch.special.xlogy(p, p) - p * log_q).sum(1)


def issue_closed_form(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The closed form as the issue writes it: L - A + d_y·exp(-A), per row."""
    idx = torch.arange(z.shape[0])
    lse = torch.logsumexp(z, 1)
    zm = z.clone()
    zm[idx, y] = float("-inf")
    m_neg = torch.logsumexp(zm, 1)
    anchor = torch.logaddexp(m_neg, torch.zeros_like(m_neg))
    return lse - anchor + (-z[idx, y]) * torch.exp(-anchor)


class PeakStorage(TorchDispatchMode):
    """Records the largest storage (bytes) any op output had, forward and backward."""

    def __init__(self) -> None:
        super().__init__()
        self.peak = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self.peak = max(self.peak, t.untyped_storage().nbytes())
        return out


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def set_meta_raw(folder, key: str, value: str | None) -> None:
    """Write ``value`` (raw text, or delete the key with None) into a store's meta table,
    bypassing the writer: how tests make a malformed store."""
    import sqlite3

    from geomviz.store import STORE_FILE

    con = sqlite3.connect(folder / STORE_FILE)
    if value is None:
        con.execute("DELETE FROM meta WHERE key = ?", (key,))
    else:
        con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
    con.commit()
    con.close()


def spy_host_syncs(monkeypatch) -> list[str]:
    """Record every call that makes a tensor's value known on the host (``.item()``,
    ``.cpu()``, ``.tolist()``, ``.numpy()``, ``bool``, ``float``, ``int``): the list the
    no-host-sync tests assert on."""
    import torch

    calls: list[str] = []
    for name in ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__"):
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            calls.append(_name)
            return _orig(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return calls


@st.composite
def id_ood_scores(draw, max_n: int = 40, ties: int = 5, spread: float = 10.0):
    """ID and OOD score arrays of 1..``max_n`` values each: half the time integers in
    ±``ties`` (plenty of ties, the hard case for ROC curves), else floats in ±``spread``."""
    n_id, n_ood = draw(st.integers(1, max_n)), draw(st.integers(1, max_n))
    vals = st.integers(-ties, ties).map(float) if draw(st.booleans()) \
        else st.floats(-spread, spread)
    return (np.array(draw(st.lists(vals, min_size=n_id, max_size=n_id))),
            np.array(draw(st.lists(vals, min_size=n_ood, max_size=n_ood))))


# Many command lines through geomviz.cli.main (what `python -m geomviz` calls) in one fresh
# process: one import of torch instead of one per case. Per case: the exit status (returned
# or raised) and everything written to stderr; an exception escaping main is reported with
# its traceback, and a case still running after 20 s (it started real work) is stopped.
CLI_DRIVER = r"""
import contextlib, io, json, signal, sys, traceback
from geomviz.cli import main
class Busy(BaseException): pass
def busy(*_): raise Busy()
signal.signal(signal.SIGALRM, busy)
out = []
for argv in json.loads(sys.stdin.read()):
    err = io.StringIO()
    signal.alarm(20)
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = main(argv)
        except SystemExit as e:
            rc = e.code
        except Busy:
            rc = "still working after 20 s"
        except BaseException:
            rc = None
            traceback.print_exc(file=err)
    signal.alarm(0)
    out.append([rc, err.getvalue()])
print(json.dumps(out))
"""


def cli_many(argvs: list[list[str]], env: dict, cwd: Path) -> list[tuple[int, str]]:
    """``(exit status, stderr)`` of each command line, run by :data:`CLI_DRIVER`."""
    r = subprocess.run([sys.executable, "-c", CLI_DRIVER], input=json.dumps(argvs), env=env,
                       cwd=cwd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return [tuple(x) for x in json.loads(r.stdout.strip().splitlines()[-1])]


@contextlib.contextmanager
def serving(wsgi_app):
    """``wsgi_app`` served on a free local port in a thread (what a browser test drives);
    yields its base URL, and stops the server afterwards."""
    import threading

    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()

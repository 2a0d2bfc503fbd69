"""Language-model input errors from the command line: one line on stderr, exit 2, no traceback,
before any training starts."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GEOMVIZ_CACHE": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "geomviz", "train", *args, "--out",
                           str(tmp_path / "run"), "--no-progress"], capture_output=True,
                          text=True, env=env, timeout=120)


def _files(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 50)
    (tmp_path / "ok.txt").write_text("the quick brown fox jumps over the lazy dog. " * 200)


@pytest.mark.parametrize("args,says", [
    (["--dataset", "text"], "--data-path"),
    (["--dataset", "text", "--data-path", "{tmp}/missing.txt"], "missing.txt"),
    (["--dataset", "text", "--data-path", "{tmp}/empty.txt"], "empty"),
    (["--dataset", "text", "--data-path", "{tmp}/latin1.txt"], "UTF-8"),
    (["--dataset", "text", "--data-path", "{tmp}/ok.txt", "--vocab-size", "100"], "257"),
    (["--dataset", "synonyms", "--seq-len", "300"], "block_size"),
    (["--dataset", "synonyms", "--fused", "on", "--objective", "metric_ce"], "no fused form"),
    (["--dataset", "mnist1d", "--model", "gpt"], "token sequences"),
])
def test_bad_language_model_input_is_one_line_and_exit_2(tmp_path, args, says):
    _files(tmp_path)
    res = _run([a.replace("{tmp}", str(tmp_path)) for a in args], tmp_path)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert says.lower() in lines[0].lower(), lines[0]
    assert not (tmp_path / "run" / "run.sqlite").exists()  # caught before any work

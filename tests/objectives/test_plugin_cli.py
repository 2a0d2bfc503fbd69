"""User objectives through the commands: ``compare``/``study``/``sweep``/``train`` take
``package.module:name`` or an entry point, name runs and reports by the registered name,
keep the spec in the run's config (spawned workers and resume import it again), and refuse
a bad spec in one line with exit 2 before anything is written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geomviz.figures.theme import _SPARE, OBJECTIVE_COLORS, objective_colors
from geomviz.store import open_run
from geomviz.study.claims import claim_rows, claims_table
from geomviz.study.report import _user_lines
from geomviz.study.results import METRICS
from tests.helpers import cli_many

ROOT = Path(__file__).resolve().parents[2]
DEMO = "geomviz_plugin_demo"
FOCAL = f"{DEMO}.losses:focal"
TINY = ["--dataset", "gaussians", "--epochs", "1", "--no-progress", "--snapshots", "1",
        "--snapshot-size", "200"]


@pytest.fixture
def site(tmp_path) -> Path:
    """The demo plugin copied to a folder that only the child processes see (through
    PYTHONPATH, which spawned workers inherit), installed there as a distribution with
    two entry points in ``geomviz.objectives``."""
    site = tmp_path / "site"
    shutil.copytree(ROOT / "tests" / "plugins" / DEMO, site / DEMO)
    info = site / "geomviz_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: geomviz-plugin-demo\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[geomviz.objectives]\nfocal = geomviz_plugin_demo.losses:focal\n"
        "broken = geomviz_plugin_demo.broken:anything\n")
    return site


def _cli(argvs: list[list[str]], cwd: Path, site: Path) -> list[tuple[int, str]]:
    env = dict(os.environ, GEOMVIZ_CACHE=str(cwd / "cache"), OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([str(ROOT), str(site)]))
    return cli_many(argvs, env, cwd)


BAD = [
    ("geomviz_plugin_nope.losses:focal", "no module named 'geomviz_plugin_nope'"),
    (f"{DEMO}.losses:nope", "module 'geomviz_plugin_demo.losses' has no attribute 'nope'"),
    (f"{DEMO}.losses:not_an_objective", "is not a registered objective"),
    (f"{DEMO}.clash:tfsd", "clashes with a built-in"),
    (f"{DEMO}.broken:x", "importing 'geomviz_plugin_demo.broken' raised RuntimeError: demo "
                         "plugin could not read its settings"),
    ("broken", "importing 'geomviz_plugin_demo.broken' raised RuntimeError"),
]


def test_bad_specs_are_one_line_exit_2_in_every_command_and_write_nothing(tmp_path, site):
    argvs, want = [], []
    for spec, message in BAD:
        for argv in (["train", "--objective", spec, *TINY, "--out", "t"],
                     ["compare", "--objectives", f"ce,{spec}", *TINY, "--runs-dir", "c"],
                     ["study", "--preset", "gaussians", "--objectives", f"ce,{spec}",
                      "--seeds", "0", "--epochs", "1", "--out", "s", "--no-progress"],
                     ["sweep", "--dataset", "gaussians", "--objectives", f"ce,{spec}",
                      "--lrs", "1e-3", "--seeds", "0", "--epochs", "1", "--out", "w"],
                     ["objectives", spec]):
            argvs.append(argv)
            want.append(message)
    argvs.append(["compare", "--objectives", f"focal,{FOCAL}", *TINY, "--runs-dir", "c"])
    want.append("the objective 'focal' is listed twice")
    for argv, message, (rc, err) in zip(argvs, want, _cli(argvs, tmp_path, site),
                                        strict=True):
        assert rc == 2, (argv, rc, err)
        assert err.count("\n") == 1 and err.startswith("geomviz: error: "), (argv, err)
        assert message in err, (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]  # no folder, no cache


def test_compare_on_spawned_workers_names_the_user_objective(tmp_path, site):
    """The done-when: ``compare --objectives ce,module:name`` runs (on two spawned worker
    processes, which import the plugin again from the spec in each run's config), folders
    and ``geomviz runs`` name it by its registered name, and a rerun reuses nothing
    wrongly: ``train --resume`` with the entry-point name finds the same config."""
    runs = tmp_path / "r" / "c"
    (rc, err), = _cli([["compare", "--objectives", f"ce,{FOCAL}", *TINY, "--runs-dir", "r",
                        "--name", "c", "--workers", "2"]], tmp_path, site)
    assert rc == 0, err
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == ["ce-s0", "focal-s0"]
    with open_run(runs / "focal-s0") as run:
        meta = run.meta
    assert meta["status"] == "finished" and meta["objective"] == "focal"
    assert meta["config"]["objective"] == FOCAL == meta["objective_spec"]
    assert meta["head_objective"] == "focal"
    # listing reads the stores only: no plugin on the path
    listing = subprocess.run([sys.executable, "-m", "geomviz", "runs", str(runs)],
                             env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                             text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    row = next(line for line in listing.stdout.splitlines() if line.startswith("focal-s0"))
    assert row.split()[1] == "focal" and "finished" in row
    # the compare page opens the pair (the plugin is not imported here) in each one's colour
    pytest.importorskip("dash")
    from tests.integrations.test_examples_compare import compare_page

    page = compare_page(tmp_path / "r", "c/ce-s0", "c/focal-s0")
    assert OBJECTIVE_COLORS["ce"] in page["panels"]
    assert objective_colors(["focal"])["focal"] in page["panels"]
    assert page["left"]["data"] and page["right"]["data"]


def test_train_stores_the_spec_and_resumes_by_either_name(tmp_path, site):
    (rc1, e1), (rc2, e2) = _cli([
        ["train", "--objective", "focal", *TINY, "--out", "t"],  # the entry point
        ["train", "--objective", FOCAL, *TINY, "--epochs", "2", "--out", "t", "--resume"],
    ], tmp_path, site)
    assert rc1 == 0 and rc2 == 0, (e1, e2)
    with open_run(tmp_path / "t") as run:
        assert run.meta["config"]["objective"] == FOCAL and run.meta["objective"] == "focal"
        assert run.meta["config"]["epochs"] == 2


def test_sweep_includes_the_user_objective_by_name(tmp_path, site):
    (rc, err), = _cli([["sweep", "--dataset", "gaussians", "--objectives", f"ce,{FOCAL}",
                        "--lrs", "1e-3", "--seeds", "0", "--epochs", "1", "--format", "html",
                        "--out", "w", "--no-progress"]], tmp_path, site)
    assert rc == 0, err
    manifest = json.loads((tmp_path / "w" / "runs" / "sweep.json").read_text())
    assert manifest["objectives"] == ["ce", "focal"]
    assert {e["objective"] for e in manifest["runs"].values()} == {"ce", "focal"}
    assert (tmp_path / "w" / "runs" / "focal-lr0.001-qkoff-s0").is_dir()
    report = (tmp_path / "w" / "report.md").read_text()
    assert "| focal |" in report and FOCAL not in report.replace(f"ce,{FOCAL}", "")


def test_objectives_lists_entry_points_and_a_broken_one_without_hiding_others(tmp_path, site):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(site)]))
    r = subprocess.run([sys.executable, "-m", "geomviz", "objectives"], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert any(line.startswith("focal ") and "head=linear" in line for line in lines)
    assert f"user objective: --objective {FOCAL}" in r.stdout
    broken = next(line for line in lines if line.startswith("broken "))
    assert "cannot be loaded" in broken and "RuntimeError" in broken
    assert any(line.startswith("tfsd ") for line in lines)  # the built-ins still listed


def _rec(obj: str, seed: int, **values) -> dict:
    base = {m.key: None for m in METRICS}
    return {**base, "objective": obj, "seed": seed, "status": "finished",
            "auroc_by_score": {"msp": 0.6 + seed / 100, "max_logit": 0.9}, **values}


def test_claims_judge_a_user_objective_by_its_name_on_the_generic_claims_only():
    recs = [_rec("ce", s, norm_growth=12.0 + s, auroc=0.6 + s / 100, max_logit_train=9.0,
                 hard_target=0.0, hard_pred=1.0) for s in range(3)]
    recs += [_rec("focal", s, norm_growth=6.0 + s / 2, auroc=0.7 + s / 90, max_logit_train=5.0,
                  hard_target=0.0, hard_pred=1.0) for s in range(3)]
    rows = claim_rows([("data", recs)])
    (c1,) = rows["C1"]
    assert c1[0].startswith("data, focal:") and "CE's norm grows more than focal's" in c1[1]
    (c5,) = rows["C5"]
    assert "focal − CE" in c5[1] and "distance score" not in c5[1]
    assert not rows["C2"] and not rows["C3"]  # TFSD's head and target only
    assert all("TFSD" not in v for r in rows.values() for _, v in r)
    assert "data, focal" in claims_table([("data", recs)])
    section = "\n".join(_user_lines(recs, "##"))
    assert "### focal against CE" in section and "- ‖x‖ growth: focal" in section


def test_a_user_objective_has_one_stable_colour_of_its_own():
    a = objective_colors(["ce", "focal", "tfsd"])["focal"]
    assert a == objective_colors(["focal"])["focal"] == objective_colors(["x", "focal"])["focal"]
    assert a in _SPARE and a not in OBJECTIVE_COLORS.values()
    names = [f"loss_{i}" for i in range(len(_SPARE))]
    colours = objective_colors(names)
    assert len(set(colours.values())) == len(_SPARE)  # distinct on one figure while spares last
    assert objective_colors(names[::-1]) == colours  # not by the order given

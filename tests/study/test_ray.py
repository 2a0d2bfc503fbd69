"""``--executor ray``: a tiny sweep as Ray tasks on a local Ray (2 CPUs) gives the serial
sweep's numbers exactly; without Ray the command is one line naming the extra."""

from __future__ import annotations

import sys

import pytest

from geomviz.cli import main
from geomviz.grid import Execution
from geomviz.study.sweep import train_sweep
from tests.study.test_parallel import assert_identical, serial_1thread  # noqa: F401


def test_a_sweep_on_local_ray_equals_the_serial_sweep(serial_1thread, tmp_path,  # noqa: F811
                                                      monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:  # 2 tasks at once, 1 CPU (1 torch thread) each, as the serial grid had
        base, serial = serial_1thread
        grid = train_sweep(base, ["ce", "tfsd"], [1e-2], [0, 1], [False], tmp_path / "runs",
                           Execution(workers=2, executor="ray"))
    finally:
        ray.shutdown()
    assert [p.name for p in grid.trained] == [p.name for p in serial.trained]
    assert not grid.failed
    for a, b in zip(serial.trained, grid.trained, strict=True):
        assert_identical(a, b)


def test_without_ray_the_command_is_one_line_naming_the_extra(tmp_path, capsys,
                                                                monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    out = tmp_path / "s"
    code = main(["sweep", "--dataset", "gaussians", "--lrs", "0.5", "--seeds", "0",
                 "--executor", "ray", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and 'pip install "geomviz[ray]"' in err[0]
    assert not out.exists()
    assert main(["study", "--preset", "gaussians", "--ray-address", "x:1",
                 "--out", str(out)]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err

"""User objectives: tests/plugins/geomviz_plugin_demo, loaded as ``module:name`` from a
temporary path entry and as an entry point of a distribution "installed" into a temp folder
(a package copy plus its .dist-info, what ``pip install --target`` leaves)."""

from __future__ import annotations

import importlib
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from geomviz.objectives import (
    available_objectives,
    create_objective,
    is_builtin,
    list_objectives,
    load_objective,
    objective_info,
    register_objective,
    registry,
)

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
DEMO = "geomviz_plugin_demo"


def _forget_demo():
    for mod in [m for m in sys.modules if m == DEMO or m.startswith(DEMO + ".")]:
        del sys.modules[mod]


@pytest.fixture
def plugin_path(monkeypatch, tmp_path):
    """The demo package on a temporary sys.path entry, with an installed-distribution
    record declaring two entry points; the registry and sys.modules are restored after."""
    site = tmp_path / "site"
    shutil.copytree(PLUGINS / DEMO, site / DEMO)
    info = site / "geomviz_plugin_demo-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: geomviz-plugin-demo\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[geomviz.objectives]\nfocal = geomviz_plugin_demo.losses:focal\n"
        "broken = geomviz_plugin_demo.broken:anything\n")
    saved = dict(registry._REGISTRY)
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    _forget_demo()
    yield site
    registry._REGISTRY.clear()
    registry._REGISTRY.update(saved)
    _forget_demo()


def test_module_spec_loads_the_registered_objective(plugin_path):
    assert "focal" not in list_objectives()
    info = load_objective("geomviz_plugin_demo.losses:focal")
    assert info.name == "focal" and info.head == "linear" and not is_builtin("focal")
    assert info.params["gamma"] == 2.0
    assert load_objective("focal") is info  # once imported, by its name
    obj = create_objective("focal", 8, 5, gamma=0.0)
    x, y = torch.randn(6, 8, requires_grad=True), torch.tensor([0, 1, 2, 3, 4, -100])
    loss = obj(x, y)
    assert torch.allclose(loss, F.cross_entropy(obj.logits(x), y))  # gamma = 0 is CE
    loss.backward()
    assert x.grad.abs().sum() > 0
    assert objective_info("tfsd").factory.__module__ == "geomviz.objectives.registry"


def test_spec_finds_the_objective_again_in_a_fresh_process(plugin_path):
    info = load_objective("focal")  # through the entry point
    assert info.spec == "geomviz_plugin_demo.losses:focal"
    assert objective_info("tfsd").spec == "tfsd"
    _forget_demo()
    registry._REGISTRY.pop("focal")  # as a new process starts: nothing imported
    assert load_objective(info.spec).name == "focal"


def test_entry_point_loads_without_an_import(plugin_path):
    assert "focal" in available_objectives() and f"{DEMO}.losses" not in sys.modules
    info = load_objective("focal")
    assert info.name == "focal" and f"{DEMO}.losses" in sys.modules


def test_reimporting_a_plugin_is_allowed(plugin_path):
    load_objective("geomviz_plugin_demo.losses:focal")
    mod = importlib.reload(sys.modules[f"{DEMO}.losses"])
    assert load_objective("geomviz_plugin_demo.losses:focal").factory is mod.focal


BAD = [
    ("geomviz_plugin_nope.losses:focal", "no module named 'geomviz_plugin_nope'"),
    ("geomviz_plugin_demo.nope:focal", "no module named 'geomviz_plugin_demo.nope'"),
    ("geomviz_plugin_demo.losses:nope", "module 'geomviz_plugin_demo.losses' has no attribute "
                                        "'nope'"),
    ("geomviz_plugin_demo.losses:not_an_objective",
     "not_an_objective is not a registered objective (got int;"),
    ("geomviz_plugin_demo.losses:unregistered",
     "unregistered is not a registered objective (got function;"),
    ("geomviz_plugin_demo.clash:tfsd", "'geomviz_plugin_demo.clash' clashes with a built-in: "
                                       "objective 'tfsd' is already registered as a built-in"),
    ("geomviz_plugin_demo.broken:x", "importing 'geomviz_plugin_demo.broken' raised "
                                     "RuntimeError: demo plugin could not read its settings"),
    ("geomviz_plugin_demo.needs_missing:x", "importing 'geomviz_plugin_demo.needs_missing' "
                                            "raised ModuleNotFoundError: No module named "
                                            "'geomviz_demo_dependency_that_is_not_installed'"),
    ("broken", "objective 'broken': importing 'geomviz_plugin_demo.broken' raised RuntimeError"),
    ("no_such_objective", "unknown objective 'no_such_objective'; choose one of: "),
    ("a:b:c", "expected package.module:name"),
    (":focal", "expected package.module:name"),
    ("geomviz_plugin_demo.losses:", "expected package.module:name"),
    (" ce", "non-empty name"),
    ("", "non-empty name"),
]


@pytest.mark.parametrize("spec,message", BAD)
def test_bad_specs_are_one_line(plugin_path, spec, message):
    with pytest.raises(ValueError) as e:
        load_objective(spec)
    text = str(e.value)
    assert message in text and "\n" not in text, text
    assert "second line" not in text
    assert objective_info("tfsd").factory.__module__ == "geomviz.objectives.registry"


def test_unknown_name_lists_builtins_and_entry_points(plugin_path):
    with pytest.raises(ValueError, match="ce, ce_fused.*focal.*or give package.module:name"):
        load_objective("no_such_objective")


def test_a_second_definition_of_a_plugin_name_is_refused(plugin_path):
    load_objective("geomviz_plugin_demo.losses:focal")
    with pytest.raises(ValueError, match="already registered by geomviz_plugin_demo.losses.focal"):
        register_objective("focal", "linear", "", "")(lambda i, c: None)


@pytest.mark.parametrize("name", ["a,b", "a:b", "a b", "", "../x", None])
def test_registered_names_are_safe_in_specs_lists_and_paths(name):
    with pytest.raises(ValueError, match="objective name must be"):
        register_objective(name, "linear", "", "")

"""The Python API page lists every public name, and every name it renders has a docstring
(read statically by griffe, as mkdocstrings reads it: no framework needs importing)."""

from __future__ import annotations

import re

import pytest

from tests.docs.snippets import ROOT

griffe = pytest.importorskip("griffe")
API = ROOT / "docs" / "reference" / "api.md"
# the integrations' public names beyond geomviz.__all__
INTEGRATIONS = ["geomviz.integrations.lightning.GeomvizCallback",
                "geomviz.integrations.hf.GeomvizCallback", "geomviz.integrations.hf.apply_tfsd",
                "geomviz.objectives.register_objective", "geomviz.store.open_run",
                "geomviz.store.list_runs"]
# framework hooks a class overrides (torch.nn.Module, Lightning, Transformers): their
# meaning is the framework's, documented there
HOOKS = {"extra_repr", "reset_parameters", "setup", "state_dict", "load_state_dict",
         "state_key"}


def _rendered() -> list[str]:
    return re.findall(r"^::: (\S+)\s*$", API.read_text(), re.M)


def _undocumented(pkg, path: str) -> list[str]:
    obj = pkg[path.split(".", 1)[1]]
    obj = obj.final_target if obj.is_alias else obj
    missing = [] if obj.docstring and obj.docstring.value.strip() else [path]
    if obj.is_class:
        for name, member in obj.members.items():
            m = member.final_target if member.is_alias else member
            if name.startswith("_") or name.startswith("on_") or name in HOOKS:
                continue
            callable_ = m.is_function or "property" in m.labels
            if callable_ and not (m.docstring and m.docstring.value.strip()):
                missing.append(f"{path}.{name}")
    return missing


def test_every_public_name_is_on_the_api_page():
    import geomviz

    rendered = set(_rendered())
    missing = [n for n in [f"geomviz.{n}" for n in geomviz.__all__] + INTEGRATIONS
               if n not in rendered]
    assert not missing, f"add to docs/reference/api.md: {missing}"


def test_every_rendered_name_and_its_methods_have_docstrings():
    pkg = griffe.load("geomviz", search_paths=[str(ROOT)], resolve_aliases=True)
    missing = [m for path in _rendered() for m in _undocumented(pkg, path)]
    assert not missing, f"public names without a docstring: {missing}"


def test_the_check_sees_a_missing_docstring(tmp_path):
    (tmp_path / "fakepkg").mkdir()
    (tmp_path / "fakepkg" / "__init__.py").write_text(
        '"""x"""\n\ndef f():\n    pass\n\nclass C:\n    """c"""\n\n    def g(self):\n'
        '        pass\n\n    def on_step(self):\n        pass\n')
    pkg = griffe.load("fakepkg", search_paths=[str(tmp_path)], resolve_aliases=True)
    assert _undocumented(pkg, "fakepkg.f") == ["fakepkg.f"]
    assert _undocumented(pkg, "fakepkg.C") == ["fakepkg.C.g"]

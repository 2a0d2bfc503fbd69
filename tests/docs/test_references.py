"""The files and tests the docs name exist: a `tests/x.py::test_name` (or `::test_name`
after one, in the same file) is a test function of that file, and every `tests/`,
`benchmarks/`, `examples/` or `geomviz/` path named is there. The reliability page's proofs
cannot silently point at a renamed or deleted test."""

from __future__ import annotations

import re

from tests.docs.snippets import ROOT, pages

PATH = re.compile(r"(?<![\w/.])((?:tests|benchmarks|examples|geomviz)/[\w/.-]*\w)")
TEST = re.compile(r"`(tests/[\w/]+\.py)?::(\w+)`")


def reference_problems(text: str, name: str = "page") -> list[str]:
    """What is wrong with the `tests/x.py::name` references of ``text``."""
    problems, current = [], None
    for line in text.splitlines():
        for m in TEST.finditer(line):
            current = m.group(1) or current
            if current is None:
                problems.append(f"{name}: ::{m.group(2)} without a file before it")
                continue
            source = (ROOT / current).read_text() if (ROOT / current).exists() else ""
            if not re.search(rf"^\s*def {m.group(2)}\(", source, re.M):
                problems.append(f"{name}: {current}::{m.group(2)} does not exist")
    return problems


def test_every_named_test_function_exists():
    problems = [p for page in pages() for p in reference_problems(page.read_text(), page.name)]
    assert not problems, "\n".join(problems)


def test_the_check_sees_a_renamed_test():
    good = "`tests/test_store.py::test_stale_running_store_reads_as_crashed`"
    assert reference_problems(good) == []
    assert reference_problems(good + ", `::test_no_such_thing`") == [
        "page: tests/test_store.py::test_no_such_thing does not exist"]


def test_every_named_path_exists():
    missing = sorted({f"{page.relative_to(ROOT)}: {p}" for page in pages()
                      for p in PATH.findall(page.read_text())
                      if not (ROOT / p).exists() and not (ROOT / p.rstrip(".")).exists()})
    assert not missing, "\n".join(missing)

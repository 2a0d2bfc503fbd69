"""README.md stays short and keeps what CI and users rely on: the two commands (the test
command is what .ci/run extracts and runs), a claims table whose every row names the commit
of its runs, and links that reach the probes reference, your-own-training and the claims."""

from __future__ import annotations

import re
import subprocess

from tests.docs.snippets import ROOT

README = ROOT / "README.md"
DEMO = ('python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[dashboard]" '
        '&& .venv/bin/geomviz demo')
TEST = ('python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 -e ".[test]" '
        '&& .venv/bin/python -m pytest')
COMMIT = re.compile(r"`([0-9a-f]{7,40})`")


def _text() -> str:
    return README.read_text()


def test_line_count_is_at_most_160():
    assert len(_text().splitlines()) <= 160


def _after(marker: str) -> str:
    lines = _text().splitlines()
    i = lines.index(marker)
    assert lines[i + 1] == "```bash", f"{marker} must sit right above its bash block"
    return lines[i + 2]


def test_the_two_commands_follow_their_markers():
    assert _after("<!-- demo-command -->") == DEMO
    assert _after("<!-- test-command -->") == TEST


def test_ci_extracts_the_same_test_command():
    """The awk line of .ci/run, run on the README, finds exactly the test command."""
    script = (ROOT / ".ci" / "run").read_text()
    awk = re.search(r"cmd=\$\(awk '([^']+)' README\.md\)", script).group(1)
    out = subprocess.run(["awk", awk, str(README)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == TEST


def _claim_rows() -> list[str]:
    return [line for line in _text().splitlines() if re.match(r"\| \[C\d\]", line)]


def test_every_claim_row_has_a_verdict_numbers_and_the_commits_of_its_page():
    rows = _claim_rows()
    assert [re.match(r"\| \[(C\d)\]", r).group(1) for r in rows] == [f"C{i}" for i in
                                                                         range(1, 9)]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 4 and all(cells), row
        assert re.search(r"\d", cells[2]), f"no numbers: {row}"
        commits = COMMIT.findall(cells[3])
        assert commits, f"no commit: {row}"
        page = ROOT / "docs" / re.search(r"\]\((docs/claims/c\d\.md)\)", row).group(1)[5:]
        text = page.read_text()
        for c in commits:  # the commit the numbers were measured at, as the page says
            assert f"`{c}`" in text, f"{c} of {row[:12]} is not on {page.name}"
        for number in re.findall(r"[+−-]?\d+\.\d+", cells[2]):
            assert number in text, f"{number} of {row[:12]} is not on {page.name}"


def test_two_clicks_reach_the_probes_own_training_and_claims_pages():
    links = set(re.findall(r"\]\((docs/[^)#]+)", _text()))
    for page in ("docs/reference/probes.md", "docs/guide/own-training.md",
                 "docs/claims/index.md", *(f"docs/claims/c{i}.md" for i in range(1, 9))):
        assert page in links, page
    for link in links:
        assert (ROOT / link).exists(), link


def test_the_readme_names_the_command_that_serves_the_docs():
    assert 'pip install -e ".[docs]"' in _text()
    assert "mkdocs serve -a 127.0.0.1:" in _text()


def test_the_readme_picture_is_committed_small_and_remade_by_a_named_command():
    img = ROOT / "docs" / "assets" / "compare.png"
    assert img.stat().st_size <= 150_000
    assert "](docs/assets/compare.png)" in _text()
    assert "python tests/docs/screenshots.py --readme docs/assets/compare.png" in _text()

"""The fenced code blocks of README.md and docs/, and what the markdown says to do with each.

The rule (docs/development.md, "The snippet rule"): a `python` or `bash` block runs, in its
page's order, in one folder per page. HTML comments on the lines just above a block change
that: `<!-- smoke: OLD => NEW; ... -->` substitutes (every OLD must occur), `<!-- skip:
REASON -->` does not run it (a reason is required), `<!-- file: PATH -->` writes it to PATH.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUN_LANGS = {"python", "bash"}
COMMENT = re.compile(r"^<!--\s*(\w[\w-]*)\s*:?(.*?)-->\s*$")
FENCE = re.compile(r"^(\s*)```(\S*)\s*$")


@dataclass
class Block:
    """One fenced block: where it is, its language and code, and its markers."""

    page: str
    line: int
    lang: str
    code: str
    markers: dict[str, str] = field(default_factory=dict)

    @property
    def action(self) -> str:
        """"run", "skip", "file" or "text" (not code: never run)."""
        if "skip" in self.markers:
            return "skip"
        if "file" in self.markers:
            return "file"
        return "run" if self.lang in RUN_LANGS else "text"

    def smoke(self) -> str:
        """The code with the block's smoke substitutions applied; a stale OLD raises."""
        code = self.code
        spec = self.markers.get("smoke")
        if not spec:
            return code
        for pair in spec.split(";"):
            old, sep, new = pair.partition("=>")
            old, new = old.strip(), new.strip()
            if not sep or not old:
                raise ValueError(f"{self.where}: smoke substitution {pair!r} is not OLD => NEW")
            if old not in code:
                raise ValueError(f"{self.where}: smoke substitution {old!r} is not in the block")
            code = code.replace(old, new)
        return code

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    """README.md and every markdown page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """The fenced blocks of one page, in order, with the comments right above each."""
    rel = str(path.relative_to(ROOT))
    lines = path.read_text().splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(2)
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith("```"):
            j += 1
        code = "\n".join(s[len(m.group(1)):] for s in lines[i + 1:j]) + "\n"
        markers: dict[str, str] = {}
        k = start - 1
        while k >= 0 and (c := COMMENT.match(lines[k].strip())):
            markers.setdefault(c.group(1), c.group(2).strip())
            k -= 1
        out.append(Block(rel, start + 1, lang, code, markers))
        i = j + 1
    return out


def all_blocks() -> list[Block]:
    return [b for p in pages() for b in blocks(p)]

"""The compare page's "download figures" action: the same files `geomviz figures` writes.

Built on request from the two runs being compared (publication figures are not on the
slider's hot path), written to a temporary folder and returned as one zip.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

from ..study.export import ExportError, export
from ..study.figureset import build_figures
from .data import check_cache

__all__ = ["figure_zip"]


def figure_zip(root: str | Path, folders: list[Path], names: list[str] | None,
               formats: list[str]) -> tuple[bytes, str]:
    """``(zip bytes, message)``. Without a browser for static formats the zip holds the
    HTML files and the message says why the rest is missing and how to fix it."""
    check_cache(root)
    figs = build_figures(folders, names, cache_root=Path(root))
    message = ""
    with tempfile.TemporaryDirectory(prefix="geomviz-figures-") as tmp:
        try:
            export(figs.figures, tmp, formats)
        except ExportError as e:
            if "html" not in formats:
                export(figs.figures, tmp, ["html"])
            message = f"{e} (the zip holds the HTML figures)"
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for path in sorted(Path(tmp).iterdir()):
                z.write(path, path.name)
    skipped = "; ".join(f"{k}: {v}" for k, v in figs.skipped.items())
    if skipped:
        message = (message + " " if message else "") + f"not drawn: {skipped}"
    return buf.getvalue(), message

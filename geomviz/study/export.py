"""Static and interactive export of figures: PNG, SVG and PDF through kaleido v1, HTML alone.

kaleido renders with a system Chromium (or Chrome). It is found on ``PATH``
(``chromium``, ``google-chrome``, ...) or at ``$BROWSER_PATH``; it is never downloaded.
Every static file of one export is rendered by one browser in one kaleido session:
starting the browser costs seconds, a figure a fraction of one. MathJax is off (it
would be fetched from a CDN). HTML files share one ``plotly.min.js`` written beside
them, so they open offline.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..figures.theme import WIDTH

__all__ = ["FORMATS", "ExportError", "ExportResult", "browser_path", "export", "parse_formats"]

FORMATS = ("png", "svg", "pdf", "html")
STATIC = ("png", "svg", "pdf")


class ExportError(RuntimeError):
    """Export cannot run as asked (no browser, no kaleido, a bad format): one clear line."""


@dataclass
class ExportResult:
    files: list[Path] = field(default_factory=list)
    static_seconds: float = 0.0  # browser start + rendering of every static file
    total_seconds: float = 0.0


def parse_formats(text: str) -> list[str]:
    """``"png,svg"`` -> ``["png", "svg"]``, checked against :data:`FORMATS`."""
    formats = [f.strip().lower().lstrip(".") for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"unknown format {bad[0] if bad else text!r}; "
                          f"choose from {', '.join(FORMATS)}")
    return list(dict.fromkeys(formats))


def browser_path() -> str | None:
    """The Chromium/Chrome kaleido would use (``$BROWSER_PATH`` first), or ``None``."""
    try:
        from choreographer.browsers.chromium import Chromium
    except ImportError:
        return None
    try:
        path = Chromium.find_browser(skip_local=True)
    except Exception:  # noqa: BLE001 - any failure to look means: not found
        return None
    return str(path) if path and Path(path).exists() else None


def _no_browser(formats: list[str]) -> ExportError:
    return ExportError(
        f"{'/'.join(formats)} export needs Chromium or Chrome, and none was found: install it "
        "(Debian/Ubuntu: apt-get install chromium) or set BROWSER_PATH to its executable; "
        "--format html works without it")


def _size(fig, width: int) -> tuple[int, int]:
    """Export size: the figure's own height, scaled with the width to keep its shape."""
    w0 = fig.layout.width or WIDTH
    h0 = fig.layout.height or 500
    return width, round(h0 * width / w0)


def _tabs(n_specs: int) -> int:
    """Browser tabs rendering in parallel: a second tab costs about 2 s to open and pays
    off from about ten files on two or more cores."""
    return 2 if n_specs >= 10 and (os.cpu_count() or 1) >= 2 else 1


async def _render(specs: list[dict], timeout: float) -> None:
    import kaleido
    from choreographer.errors import ChromeNotFoundError

    try:
        async with kaleido.Kaleido(n=_tabs(len(specs)), timeout=timeout, mathjax=False) as k:
            await k.write_fig_from_object(specs)
    except ChromeNotFoundError:
        raise _no_browser(sorted({s["opts"]["format"] for s in specs})) from None


def _run(coro) -> None:
    """Run ``coro`` to completion, also from a thread or a caller with a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


def export(figures: dict, out: str | Path, formats: list[str], width: int = WIDTH,
           scale: float = 2.0, timeout: float = 120.0) -> ExportResult:
    """Write ``<out>/<name>.<format>`` for every figure and format; returns the files.

    ``width`` is in layout px (heights keep each figure's shape); ``scale`` multiplies
    the pixels of PNGs only, since SVG and PDF are vectors. HTML is written first, so
    that it exists even when static export then fails.
    """
    t0 = time.perf_counter()
    formats = parse_formats(",".join(formats))
    if not 100 <= width <= 5000:
        raise ExportError(f"--width must be between 100 and 5000 px, got {width}")
    if not 0.25 <= scale <= 8:
        raise ExportError(f"--scale must be between 0.25 and 8, got {scale}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    for name, fig in figures.items():
        if "html" in formats:
            w, h = _size(fig, width)
            path = out / f"{name}.html"
            fig.write_html(path, include_plotlyjs="directory", full_html=True,
                           default_width=f"{w}px", default_height=f"{h}px",
                           config={"displaylogo": False, "toImageButtonOptions": {
                               "format": "svg", "filename": name, "width": w, "height": h}})
            result.files.append(path)
    static = [f for f in formats if f in STATIC]
    if static and figures:
        try:
            import kaleido  # noqa: F401
        except ImportError:
            raise ExportError("static export needs kaleido: pip install 'geomviz[export]' "
                              "(or pip install kaleido); --format html works without it") \
                from None
        if browser_path() is None:
            raise _no_browser(static)
        specs = []
        for name, fig in figures.items():
            w, h = _size(fig, width)
            data = fig.to_dict()
            for fmt in static:
                path = out / f"{name}.{fmt}"
                specs.append({"fig": data, "path": path, "opts": {  # vectors: scale 1
                    "format": fmt, "width": w, "height": h, "scale": scale if fmt == "png" else 1}})
        t1 = time.perf_counter()
        _run(_render(specs, timeout))
        result.static_seconds = time.perf_counter() - t1
        missing = [s["path"] for s in specs if not Path(s["path"]).is_file()]
        if missing:
            raise ExportError(f"kaleido wrote no {missing[0].name} ({len(missing)} file(s) "
                              "missing)")
        result.files += [Path(s["path"]) for s in specs]
    result.total_seconds = time.perf_counter() - t0
    return result

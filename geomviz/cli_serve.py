"""The serving commands, ``geomviz demo`` and ``geomviz dashboard``: parsers and handlers.

Kept apart from :mod:`geomviz.cli` (the entry point and the single-run commands) so each
file stays one concern; they share its argument parsers and its one-line error handling.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .cli import DEMO_EPOCHS, UserError, _compare, _int_in, _named

__all__ = ["add_demo_command", "add_dashboard_command"]


def _check_listen(host: str, port: int) -> None:
    """Fail in one line, before any work, when the server could not listen at host:port
    (an unknown host, a port in use or not ours to take)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as s:
            s.bind(address)
    except OSError as e:
        raise UserError(f"cannot serve on {host}:{port}: {e.strerror or e}") from None


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.dashboard:
        _check_listen(args.host, args.port)
    root = Path(_named(args.runs_dir, "--runs-dir")) / f"demo-{time.strftime('%Y%m%d-%H%M%S')}"
    args.config, args.objective_arg = None, []
    # digits 8 and 9 are held out of training: they are the OOD split the runs are scored on
    _compare(args, ["ce", "tfsd"], [0], root, dataset="mnist1d", ood_classes=[8, 9],
             epochs=args.epochs)
    print(f"\nCE and TFSD runs are in {root} (list them with: geomviz runs {root})")
    if not args.dashboard:  # say how to look at them later
        print(f"open the dashboard on them with: geomviz dashboard {root}\n"
              f"then browse to http://127.0.0.1:8050/compare?a=ce-s0&b=tfsd-s0", flush=True)
        return 0
    from .dashboard import create_app

    app = create_app(root)
    _demo_fast_view(app, root)
    url = f"http://{args.host}:{args.port}/compare?a=ce-s0&b=tfsd-s0"
    print(f"dashboard: {url}  (Ctrl-C to stop)", flush=True)
    _serve(app, args.host, args.port)
    return 0


def _demo_fast_view(app, root: Path) -> None:
    """Start the compare page's aligned nonlinear view of the two demo runs in the background
    (a child process, tens of seconds) right after training: the page shows PCA and the
    job's progress meanwhile, and this prints when the view is ready."""
    import threading

    from .dashboard.data import resolve_run
    from .dashboard.jobs import start_job

    pair = [resolve_run(root, "ce-s0"), resolve_run(root, "tfsd-s0")]
    t0 = time.perf_counter()
    status = start_job(app.server, root, pair, "fast_umap")  # the jobs live on the Flask app
    print("computing the aligned UMAP view of both runs in the background (the page shows PCA "
          "until it is ready)", flush=True)

    def report() -> None:
        while status["state"] == "running":
            time.sleep(0.5)
        if status["state"] == "done":
            print(f"aligned UMAP view ready ({time.perf_counter() - t0:.1f} s)", flush=True)
        else:
            print(f"the aligned UMAP view failed: {status['error']}", flush=True)

    threading.Thread(target=report, name="geomviz-demo-view", daemon=True).start()


def _cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import create_app

    _named(args.folder, "the runs folder")  # '' would serve the current folder
    _check_listen(args.host, args.port)
    app = create_app(args.folder)
    print(f"geomviz dashboard: http://{args.host}:{args.port}/ (runs in {args.folder}); "
          "Ctrl-C to stop", flush=True)
    _serve(app, args.host, args.port)
    return 0


def _serve(app, host: str, port: int) -> None:
    """Serve without Werkzeug's access log: the live pages poll every few seconds, and a
    line per request buried the terminal's messages (errors are still printed)."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.run(host=host, port=port, debug=False)


def _add_serve_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1",
                   help="address the dashboard listens on (default: 127.0.0.1, this machine "
                        "only)")
    p.add_argument("--port", type=_int_in(1, 65535), default=8050,
                   help="port the dashboard listens on (default: 8050)")


def add_demo_command(sub) -> None:
    p = sub.add_parser("demo", help="CE vs TFSD on MNIST-1D (digits 8, 9 held out as OOD)",
                       description="Train a CE run and a TFSD run on MNIST-1D (digits 8 and "
                                   "9 held out as the OOD split, seed 0), then open the "
                                   "dashboard comparing them.")
    p.add_argument("--runs-dir", default="runs",
                   help="folder the demo's runs are written under, in a new demo-<time> "
                        "folder (default: runs)")
    p.add_argument("--epochs", type=_int_in(1), default=DEMO_EPOCHS,
                   help=f"training epochs of each run (default: {DEMO_EPOCHS})")
    p.add_argument("--dashboard", action=argparse.BooleanOptionalAction, default=True,
                   help="serve the dashboard on the runs afterwards (default: yes)")
    _add_serve_flags(p)
    p.set_defaults(func=_cmd_demo)


def add_dashboard_command(sub) -> None:
    p = sub.add_parser("dashboard", help="serve the CE-vs-TFSD dashboard")
    p.add_argument("folder", nargs="?", default="runs",
                   help="runs folder to serve; nothing outside it is served (default: runs)")
    _add_serve_flags(p)
    p.set_defaults(func=_cmd_dashboard)

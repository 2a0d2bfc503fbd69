"""Thin Dash entry point: ``python app.py --runs runs/`` (same as ``geomviz dashboard runs/``)."""

from __future__ import annotations

import argparse
import sys

from geomviz.dashboard import create_app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", default="runs", help="the runs folder (default runs)")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8050)
    args = p.parse_args()
    try:  # an empty or missing runs folder is one line, exit 2 (never the current folder)
        app = create_app(args.runs)
    except ValueError as e:
        print(f"app.py: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    app.run(host=args.host, port=args.port, debug=False)


if __name__ == "__main__":
    main()

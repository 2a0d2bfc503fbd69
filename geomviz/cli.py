"""The ``geomviz`` command line.

Errors a user can cause (bad names, bad values) print one line to stderr and
exit with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys

NOT_YET = {
    "demo": "train CE and TFSD on MNIST-1D, then open the dashboard",
    "train": "train a model with any registered objective",
    "dashboard": "open the CE-vs-TFSD dashboard",
}


class UserError(Exception):
    """An error caused by the user's input: reported as one line, exit status 2."""


def _cmd_objectives(args: argparse.Namespace) -> int:
    from .objectives import list_objectives, objective_info

    names = [args.name] if args.name else list_objectives()
    for name in names:
        try:
            info = objective_info(name)
        except ValueError as e:
            raise UserError(str(e)) from None
        params = ", ".join(f"{k}={v!r}" for k, v in info.params.items())
        print(f"{info.name:16s} head={info.head:9s} {info.formula}")
        print(f"{'':16s} {info.description}")
        print(f"{'':16s} hyperparameters: {params}")
    return 0


def _not_yet(what: str):
    def run(args: argparse.Namespace) -> int:
        print(f"geomviz {what}: not yet ({NOT_YET[what]}; the trainer lands with the next issue). "
              "Available now: `geomviz objectives`.")
        return 0

    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="geomviz", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser("objectives", help="list the registered objectives and their formulas")
    p.add_argument("name", nargs="?", help="show one objective only")
    p.set_defaults(func=_cmd_objectives)
    for what, text in NOT_YET.items():
        sub.add_parser(what, help=f"{text} (not yet)").set_defaults(func=_not_yet(what))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args))
    except UserError as e:
        print(f"geomviz: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `geomviz objectives | head`
        sys.stdout = open("/dev/null", "w")  # noqa: SIM115 - silence the flush at exit
        return 0
    except KeyboardInterrupt:
        print("geomviz: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

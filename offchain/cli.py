"""The `dpre` command line. Each subcommand lives in the module that owns its concept."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from offchain import __version__
from offchain.errors import UserError


def _cmd_demo(args: argparse.Namespace) -> int:
    from offchain.demo import run_demo

    return run_demo(port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpre",
        description="DPRE: Decentralized Portfolio Risk Engine (off-chain oracle, keeper and tools).",
    )
    parser.add_argument("--version", action="version", version=f"dpre {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="end-to-end demonstration on a local Anvil chain")
    demo.add_argument("--port", type=int, default=8545, help="Anvil port (0 picks a free one)")
    demo.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return handler(args)
    except UserError as err:
        print(f"dpre {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dpre {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

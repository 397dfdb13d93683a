"""The `dpre` command line. Each subcommand lives in the module that owns its concept."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from offchain import __version__
from offchain.errors import DpreError


def _cmd_demo(args: argparse.Namespace) -> int:
    from offchain.demo import run_demo

    return run_demo(
        port=args.port,
        traders=args.traders,
        seed=args.seed,
        scenario=args.scenario,
        steps=args.steps,
        out=args.out,
        fund_seed=args.fund_seed,
        settle=not args.no_settle,
    )


def _cmd_margin(args: argparse.Namespace) -> int:
    import json

    from offchain.risk.comparison import VarSettings
    from offchain.risk.io import load_json, parse_market, parse_params, parse_portfolio
    from offchain.risk.params import MarginParams
    from offchain.risk.report import analyze, format_text

    portfolio = parse_portfolio(load_json(args.portfolio, "portfolio"))
    market = parse_market(load_json(args.market, "market"))
    params = parse_params(load_json(args.params, "params")) if args.params else MarginParams()
    result = analyze(portfolio, market, params, VarSettings(paths=args.var_paths, seed=args.seed))
    print(json.dumps(result, indent=2) if args.json else format_text(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpre",
        description="DPRE: Decentralized Portfolio Risk Engine (off-chain oracle, keeper and tools).",
    )
    parser.add_argument("--version", action="version", version=f"dpre {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = sub.add_parser("demo", help="end-to-end demonstration on a local Anvil chain")
    demo.add_argument("--port", type=int, default=8545, help="Anvil port (0 picks a free one)")
    demo.add_argument("--traders", type=int, default=200, help="population size (thousands work, slower)")
    demo.add_argument("--seed", type=int, default=7, help="same seed and scenario, same report numbers")
    demo.add_argument("--scenario", help="scenario file (default scenarios/eth-crash-2020-03-12.json)")
    demo.add_argument(
        "--steps",
        type=int,
        default=0,
        help="price updates to play the path in (default 0: one per point of the scenario's path)",
    )
    demo.add_argument("--out", help="report directory (default runs/<scenario>-seed<seed>-n<traders>)")
    demo.add_argument("--fund-seed", type=float, default=1_000.0, help="initial insurance fund")
    demo.add_argument("--no-settle", action="store_true", help="skip the expiry and settlement phase")
    demo.set_defaults(handler=_cmd_demo)

    margin = sub.add_parser("margin", help="margin, Greeks and model comparison for one portfolio")
    margin.add_argument("portfolio", help="portfolio JSON file (see README: JSON formats)")
    margin.add_argument("--market", required=True, help="market snapshot JSON file")
    margin.add_argument("--params", help="risk parameter JSON file (default: the built-in set)")
    margin.add_argument("--json", action="store_true", help="machine-readable output")
    margin.add_argument("--var-paths", type=int, default=20_000, help="Monte Carlo paths for VaR/ES")
    margin.add_argument("--seed", type=int, default=20200312, help="Monte Carlo seed")
    margin.set_defaults(handler=_cmd_margin)

    from offchain.keeper.daemon import add_commands as add_keeper
    from offchain.oracle.run import add_commands as add_oracle

    from offchain.marketmaker import add_commands as add_market_maker

    add_oracle(sub)
    add_keeper(sub)
    add_market_maker(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    args.command = " ".join(
        a for a in (args.command, getattr(args, "oracle_command", None), getattr(args, "keeper_command", None)) if a
    )
    try:
        return handler(args)
    except DpreError as err:  # any error raised on purpose says what is wrong: no stack trace
        print(f"dpre {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dpre {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

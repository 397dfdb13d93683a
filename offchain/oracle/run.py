"""`dpre oracle signer` and `dpre oracle gateway`: the long-running processes."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from pathlib import Path

from offchain.attest.eip712 import Domain
from offchain.attest.keys import load_signer
from offchain.chain.contracts import SystemClient
from offchain.chain.deploy import Deployment
from offchain.errors import UserError
from offchain.ops.logs import event, setup
from offchain.oracle.core import Oracle
from offchain.oracle.market_sources import FeedConfig, FeedMarketSource, MarketSource, ScenarioMarketSource
from offchain.oracle.server import Gateway, gateway_app, signer_app
from offchain.ops.web import HttpLimits, HttpService
from offchain.risk.io import parse_params
from offchain.risk.params import MarginParams
from offchain.market_path import load_scenario


def _source(args: argparse.Namespace, client: SystemClient, deployment: Deployment) -> MarketSource:
    if args.scenario:
        start = args.scenario_start or client.block_time("latest")
        return ScenarioMarketSource(load_scenario(args.scenario), start, args.scenario_speed)
    feeds_conf = json.loads(Path(args.feeds).read_text()) if args.feeds else {}
    feeds: dict[str, FeedConfig] = {}
    for name, addresses in deployment.feeds.items():
        conf = {**addresses, **feeds_conf.get(name, {})}
        feeds[name] = FeedConfig(**{k: v for k, v in conf.items() if k in FeedConfig.__dataclass_fields__})
    if not feeds:
        raise UserError("no market data: the deployment lists no feeds; pass --feeds FILE or --scenario FILE")
    correlations = {tuple(k.split("/")): float(v) for k, v in feeds_conf.get("correlations", {}).items()}
    return FeedMarketSource(client.w3, feeds, correlations, logs_from_block=max(0, deployment.deploy_block - 1))


def _param_sets(paths: list[str] | None) -> list[MarginParams]:
    """The model parameter versions this signer holds (`--params FILE`, repeatable; JSON of
    MarginParams fields including `version`). It signs the version in force on-chain."""
    out = []
    for path in paths or []:
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"--params {path}: {err}") from None
        out.append(parse_params(data, f"--params {path}"))
    return out


def _until_signal(stop: threading.Event) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        time.sleep(0.2)


def _authorized(client: SystemClient, address: str) -> bool | None:
    """Whether the clearinghouse counts this signer's signatures now (None: cannot tell)."""
    try:
        return bool(client.ch.functions.isSigner(address).call())
    except Exception:
        return None


def _follow(oracle: Oracle, client: SystemClient, stop: threading.Event, every: float = 2.0) -> None:
    """Keeps the replica (and the lag metric) following the chain between requests, and whether
    the signer set still holds this signer."""
    while not stop.wait(every):
        try:
            oracle.sync()
        except Exception:  # an outage: requests answer 503 meanwhile, /health says why
            continue
        known = _authorized(client, oracle.signer.address)
        if known is not None:
            oracle.authorized = known


def run_signer(args: argparse.Namespace) -> int:
    log = setup(f"oracle-signer-{args.port}", args.log_level)
    deployment = Deployment.load(args.deployment)
    client = SystemClient(args.rpc, deployment)
    signer = load_signer(args.key_env, args.keystore, args.password_env)
    state_path = Path(args.state) if args.state else None
    param_sets = _param_sets(args.params)
    oracle = Oracle(
        client,
        _source(args, client, deployment),
        signer,
        state_path=state_path,
        ttl_seconds=args.ttl,
        param_sets=param_sets,
        confirmations=args.confirmations,
    )
    block = oracle.sync()
    oracle.authorized = _authorized(client, signer.address) is not False
    if not oracle.authorized:
        event(
            log,
            "this signer's key is not in the on-chain signer set: its signatures count for nothing; "
            "/health answers 503 until governance adds it",
            logging.ERROR,
            address=signer.address,
        )
    limits = HttpLimits.from_args(args)
    server = HttpService(signer_app(oracle, limits), args.host, args.port, limits)
    server.serve_in_thread()
    stop = threading.Event()
    threading.Thread(target=_follow, args=(oracle, client, stop), name="follow", daemon=True).start()
    event(
        log,
        "signer up",
        address=signer.address,
        port=server.port,
        block=block,
        authorized=oracle.authorized,
        params=oracle.params_status(),
    )
    _until_signal(stop)
    server.shutdown()
    oracle.save()
    event(log, "signer stopped")
    return 0


def run_gateway(args: argparse.Namespace) -> int:
    log = setup(f"oracle-gateway-{args.port}", args.log_level)
    deployment = Deployment.load(args.deployment)
    urls = [u.strip().rstrip("/") for u in args.signers.split(",") if u.strip()]
    threshold = args.threshold or deployment.threshold
    gateway = Gateway(urls, threshold, Domain(deployment.chain_id, deployment.clearinghouse), deployment.signers)
    limits = HttpLimits.from_args(args)
    server = HttpService(gateway_app(gateway, limits), args.host, args.port, limits)
    server.serve_in_thread()
    event(log, "gateway up", port=server.port, signers=len(urls), threshold=threshold)
    stop = threading.Event()
    _until_signal(stop)
    server.shutdown()
    event(log, "gateway stopped")
    return 0


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    oracle = sub.add_parser("oracle", help="the risk oracle services").add_subparsers(
        dest="oracle_command", metavar="ROLE"
    )
    s = oracle.add_parser("signer", help="one signer: rebuilds state from chain events, signs attestations")
    s.add_argument("--rpc", default="http://127.0.0.1:8545")
    s.add_argument("--deployment", required=True, help="deployment JSON written by the deploy script")
    s.add_argument("--key-env", help="environment variable holding the signer's hex private key")
    s.add_argument("--keystore", help="encrypted JSON keystore of the signer key")
    s.add_argument("--password-env", help="environment variable holding the keystore password")
    s.add_argument("--feeds", help="JSON overrides for the deployment's feeds (max_age, max_jump, skew, …)")
    s.add_argument("--scenario", help="replay a scenario file instead of reading feeds")
    s.add_argument("--scenario-start", type=int, default=0, help="unix time of the scenario's t = 0")
    s.add_argument("--scenario-speed", type=float, default=1.0)
    s.add_argument("--state", help="snapshot file: resume from it instead of replaying from the deploy block")
    s.add_argument("--ttl", type=int, default=60, help="seconds an attestation stays valid")
    s.add_argument(
        "--confirmations",
        type=int,
        default=None,
        help="sign for the state this many blocks below the head (default: the deployment's)",
    )
    s.add_argument(
        "--params",
        action="append",
        metavar="FILE",
        help="model parameters of a version this signer holds (JSON of MarginParams fields; repeatable); "
        "the built-in defaults are always held",
    )
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9101)
    HttpLimits.add_arguments(s)
    s.add_argument("--log-level", default="INFO")
    s.set_defaults(handler=run_signer)
    g = oracle.add_parser("gateway", help="combines m-of-n signers behind one API")
    g.add_argument("--deployment", required=True)
    g.add_argument("--signers", required=True, help="comma-separated signer base URLs")
    g.add_argument("--threshold", type=int, default=0, help="default: the deployment's threshold")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, default=9100)
    HttpLimits.add_arguments(g)
    g.add_argument("--log-level", default="INFO")
    g.set_defaults(handler=run_gateway)

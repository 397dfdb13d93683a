"""The keeper loop: each new block, find accounts near or below MM, warn, liquidate (batched),
deleverage bankruptcies the fund cannot cover, and settle expired options.

Restart-safe: a chain-state snapshot (the cursor) and a journal of started actions are written
to --state-dir; a killed keeper resumes where it stopped and never repeats a mined action.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account import Account
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from offchain.attest.keys import load_signer
from offchain.attest.messages import from_wire
from offchain.chain.contracts import RPC_FAILURES, SystemClient
from offchain.chain.deploy import Deployment
from offchain.keeper.journal import Journal
from offchain.keeper.notify import MarginCallNotifier
from offchain.keeper.txsender import SimulationFailed, TxSender
from offchain.ops.httpserver import JsonServer
from offchain.ops.logs import event, setup
from offchain.oracle.state import ChainState
from offchain.risk.units import WAD

log = logging.getLogger("keeper")


@dataclass
class KeeperConfig:
    oracle_url: str
    batch_size: int = 10
    margin_call_ratio: float = 1.2
    poll_seconds: float = 0.5
    dry_run: bool = False
    liquidate_unprofitable: bool = False
    min_profit: float = 0.0  # collateral units the bonus must exceed the gas cost by
    collateral_per_eth: float = 3000.0  # to price gas in collateral for the profitability check
    webhooks: list[str] = field(default_factory=list)


class OracleClient:
    def __init__(self, base: str, timeout: float = 15.0) -> None:
        self.base, self.timeout = base.rstrip("/"), timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as err:
            detail = json.loads(err.read() or b"{}").get("error", "")
            raise OracleRefused(err.code, detail) from None

    def get(self, path: str) -> dict[str, Any]:
        return self._call("GET", path)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("POST", path, body)


class OracleRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"oracle refused ({status}): {message}")
        self.status = status


def _signed(item: dict[str, Any]) -> tuple[Any, bytes]:
    return from_wire(item), bytes.fromhex(item["signatures"][2:])


class Keeper:
    def __init__(self, client: SystemClient, oracle: OracleClient, account: Any, config: KeeperConfig, state_dir: Path) -> None:
        self.client, self.oracle, self.account, self.config = client, oracle, account, config
        self.state_dir = state_dir
        self.state_path = state_dir / "chain-state.json"
        key = ChainState.key_of(client.deployment.chain_id, client.deployment.clearinghouse)
        self.state = ChainState.load(self.state_path, key) or ChainState(block=client.deployment.deploy_block - 1, deployment_key=key)
        self.journal = Journal(state_dir / "journal.json")
        self.sender = TxSender(client.w3, account)
        self.notifier = MarginCallNotifier(state_dir / "margin-calls.jsonl", config.webhooks)
        self.stop = threading.Event()
        self.last_loop = 0.0
        self.acted = False
        # head block at the start of the latest loop that found nothing to do (drivers wait on it)
        self.idle_at_block = -1
        self.registry = CollectorRegistry()
        r = self.registry
        self.m_lag = Gauge("keeper_block_lag", "Head minus the last block the keeper processed", registry=r)
        self.m_at_risk = Gauge("keeper_accounts_at_risk", "Accounts below maintenance margin", registry=r)
        self.m_near = Gauge("keeper_accounts_near_mm", "Accounts between MM and the margin-call ratio", registry=r)
        self.m_liq = Counter("keeper_liquidations_total", "Accounts liquidated", ["result"], registry=r)
        self.m_adl = Counter("keeper_deleveragings_total", "Deleveragings", ["result"], registry=r)
        self.m_settle = Counter("keeper_settlements_total", "Accounts settled", ["result"], registry=r)
        self.m_calls = Counter("keeper_margin_calls_total", "Margin-call warnings sent", registry=r)
        self.m_balance = Gauge("keeper_balance_eth", "Gas balance of the keeper", registry=r)
        self.m_cash = Gauge("keeper_cash", "The keeper's collateral cash in the clearinghouse", registry=r)
        self.m_att = Histogram("keeper_attestation_seconds", "Oracle round-trip for attestations", registry=r,
                               buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.m_errors = Counter("keeper_loop_errors_total", "Loop iterations that failed", registry=r)
        self.m_rpc = Gauge("keeper_rpc_failures", "RPC calls that failed and were retried with backoff", registry=r)
        self.m_rpc.set_function(lambda: float(RPC_FAILURES[0]))

    # ------------------------------------------------------------------ loop

    def run(self) -> None:
        delay = self.config.poll_seconds
        while not self.stop.is_set():
            try:
                self.step()
                delay = self.config.poll_seconds
            except Exception as err:  # RPC or oracle outage: back off, keep running
                self.m_errors.inc()
                event(log, "loop failed; backing off", logging.WARNING, error=f"{type(err).__name__}: {str(err)[:300]}",
                      retry_in=round(delay, 2))
                self.stop.wait(delay)
                delay = min(delay * 2, 10.0)
                continue
            self.stop.wait(self.config.poll_seconds)
        self.state.save(self.state_path)
        event(log, "keeper stopped", block=self.state.block)

    def sync(self) -> int:
        head = self.client.head()
        self.state.catch_up(self.client, head)
        self.m_lag.set(max(0, head - self.state.block))
        return head

    def step(self) -> None:
        self.acted = False
        head = self.sync()
        risk = self.oracle.get(f"/v1/risk/accounts?max_ratio={self.config.margin_call_ratio}")
        rows = risk["accounts"]
        below = [r for r in rows if r["ratio"] < 1.0]
        near = [r for r in rows if r["ratio"] >= 1.0]
        self.m_at_risk.set(len(below))
        self.m_near.set(len(near))
        for r in near:
            if self.notifier.warn(r, head):
                self.m_calls.inc()
        # The fund covers bankruptcies one after another: those it can still cover are liquidated
        # whole (it pays the deficit), the rest go to auto-deleveraging.
        fund = float(risk["fund_balance"])
        bankrupt = []
        for r in sorted((r for r in below if r["equity"] < 0), key=lambda r: -r["equity"]):
            if -r["equity"] <= fund:
                fund += r["equity"]
            else:
                bankrupt.append(r)
        partial = [r for r in below if r not in bankrupt and r["account"] != self.account.address]
        for k in range(0, len(partial), self.config.batch_size):
            self.liquidate(partial[k : k + self.config.batch_size])
        for r in bankrupt:
            self.deleverage(r)
        self.settle_expired()
        self.state.save(self.state_path)
        self.last_loop = time.time()
        if not self.acted:
            self.idle_at_block = head
        self.m_balance.set(self.client.w3.eth.get_balance(self.account.address) / 1e18)
        acct = self.state.accounts.get(self.account.address)
        self.m_cash.set((acct.cash if acct else 0) / WAD)

    # ------------------------------------------------------------------ actions

    def _attest(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        start = time.perf_counter()
        try:
            return self.oracle.post(f"/v1/attest/{endpoint}", body)
        finally:
            self.m_att.observe(time.perf_counter() - start)

    def _execute(self, key: str, call: Any, action: str, expected_gain: float, *, duty: bool = False,
                 **fields: Any) -> bool | None:
        """Simulates, checks profitability, sends, journals. True when mined successfully, False
        when sent and failed or skipped, None when the simulation says it would revert. A `duty`
        (deleveraging, settlement) earns nothing and is done regardless of profit."""
        try:
            self.sender.simulate(call)
        except SimulationFailed as err:
            event(log, f"{action} would revert; skipped", logging.WARNING, reason=str(err)[:300], **fields)
            return None
        gas = self.sender.estimate(call)
        max_fee, _ = self.sender.fees()
        gas_cost = gas * max_fee / 1e18 * self.config.collateral_per_eth
        if not duty and expected_gain - gas_cost < self.config.min_profit and not self.config.liquidate_unprofitable:
            event(log, f"{action} unprofitable; skipped (use --liquidate-unprofitable)", logging.WARNING,
                  gain=round(expected_gain, 4), gas_cost=round(gas_cost, 4), **fields)
            return False
        if self.config.dry_run:
            event(log, f"dry run: would send {action}", gas=gas, gain=round(expected_gain, 4), **fields)
            return False
        self.journal.record(key, action=action, **fields)
        self.acted = True
        receipt = self.sender.send(call, gas)
        ok = int(receipt["status"]) == 1
        self.journal.update(key, status="done" if ok else "reverted", tx="0x" + bytes(receipt["transactionHash"]).hex(),
                            block=int(receipt["blockNumber"]), gas_used=int(receipt["gasUsed"]))
        event(log, f"{action} {'mined' if ok else 'reverted'}", tx="0x" + bytes(receipt["transactionHash"]).hex(),
              gas_used=int(receipt["gasUsed"]), **fields)
        return ok

    def _journaled(self, kind: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Rows not already acted on in their current state (after a restart, asks the chain)."""
        fresh = []
        for r in rows:
            entry = self.journal.seen(Journal.key(kind, r["account"], r["state_hash"]))
            if entry is None:
                fresh.append(r)
            elif entry.get("status") == "pending" and bytes(self.client.ch.functions.stateHashOf(r["account"]).call()).hex() == r["state_hash"][2:]:
                # started before a crash and the account did not change: the transaction never landed
                fresh.append(r)
        return fresh

    def liquidate(self, rows: list[dict[str, Any]]) -> None:
        rows = self._journaled("liquidate", rows)
        if not rows:
            return
        accounts = [r["account"] for r in rows]
        try:
            resp = self._attest("liquidation", {"accounts": accounts, "liquidator": self.account.address})
        except OracleRefused as err:
            if len(rows) > 1 and err.status in (404, 409):  # one account changed: go one by one
                for r in rows:
                    self.liquidate([r])
                return
            event(log, "liquidation attestation refused", logging.WARNING, accounts=accounts, error=str(err))
            self.m_liq.labels("refused").inc(len(rows))
            return
        requests = []
        for a in accounts:
            att, sigs = _signed(resp["items"][a])
            requests.append((a, att.as_tuple(), sigs, WAD))
        katt, ksigs = _signed(resp["items"]["liquidator"])
        call = self.client.engine.functions.liquidate(requests, katt.as_tuple(), ksigs)
        gain = sum(int(f["bonus"]) for f in resp["extra"]["fractions"].values()) / WAD
        key = Journal.key("liquidate", accounts[0], rows[0]["state_hash"]) if len(rows) == 1 else \
            Journal.key("liquidate-batch", ",".join(accounts), ",".join(r["state_hash"] for r in rows))
        ok = self._execute(key, call, "liquidation", gain, accounts=accounts,
                           fractions={a: int(f["fraction"]) / WAD for a, f in resp["extra"]["fractions"].items()})
        if ok is None and len(rows) > 1:
            # one account sinks the batch (e.g. the fund ran short mid-batch): go one by one
            for r in rows:
                self.liquidate([r])
            return
        ok = bool(ok)
        for r in rows:
            self.journal.update(Journal.key("liquidate", r["account"], r["state_hash"]), status="done" if ok else "failed")
        self.m_liq.labels("done" if ok else "failed").inc(len(rows))

    def deleverage(self, row: dict[str, Any]) -> None:
        if not self._journaled("adl", [row]):
            return
        account = row["account"]
        try:
            if account not in self.state.flagged:
                margin = self._attest("margin", {"account": account})
                att, sigs = _signed(margin["items"]["margin"])
                self._execute(Journal.key("flag", account, row["state_hash"]),
                              self.client.engine.functions.flagBankruptcy(account, att.as_tuple(), sigs),
                              "bankruptcy flag", 0.0, duty=True, account=account)
            plan = self._attest("adl", {"account": account})
        except OracleRefused as err:
            event(log, "ADL attestation refused", logging.WARNING, account=account, error=str(err))
            self.m_adl.labels("refused").inc()
            return
        att, sigs = _signed(plan["items"]["adl"])
        fills = [(f["leg"], f["counterparty"], f["rank"], [bytes.fromhex(p[2:]) for p in f["proof"]]) for f in plan["extra"]["fills"]]
        call = self.client.engine.functions.deleverage(att.as_tuple(), sigs, fills)
        ok = self._execute(Journal.key("adl", account, row["state_hash"]), call, "deleveraging", 0.0,
                           duty=True, account=account)
        self.m_adl.labels("done" if ok else "failed").inc()

    def settle_expired(self) -> None:
        now = self.client.block_time(self.state.block) if self.state.block >= 0 else 0
        expired = {i: inst for i, inst in self.state.instruments.items() if inst.is_option and inst.expiry <= now}
        if not expired:
            return
        holders: dict[str, list[int]] = {}
        for account, acct in self.state.accounts.items():
            ids = [i for i in acct.positions if i in expired]
            if ids:
                holders[account] = ids
        needed = {(expired[i].underlying, expired[i].expiry) for ids in holders.values() for i in ids}
        for underlying, expiry in sorted(needed):
            if (underlying, expiry) in self.state.settlement_prices:
                continue
            try:
                resp = self._attest("settlement", {"underlying": underlying, "expiry": expiry})
            except OracleRefused as err:
                event(log, "settlement price refused", logging.WARNING, underlying=underlying, expiry=expiry, error=str(err))
                continue
            price, sigs = _signed(resp["items"]["settlement"])
            self._execute(f"price:{underlying}:{expiry}", self.client.ch.functions.postSettlementPrice(price.as_tuple(), sigs),
                          "settlement price", 0.0, duty=True, underlying=underlying, expiry=expiry)
            self.sync()
        for account, ids in holders.items():
            ready = [i for i in ids if (expired[i].underlying, expired[i].expiry) in self.state.settlement_prices]
            if ready:
                ok = self._execute(f"settle:{account}:{self.state.accounts[account].state_hash.hex()}",
                                   self.client.ch.functions.settle(account, ready), "settlement", 0.0, duty=True, account=account)
                self.m_settle.labels("done" if ok else "failed").inc()

    # ------------------------------------------------------------------ ops

    def health(self) -> dict[str, Any]:
        age = time.time() - self.last_loop if self.last_loop else None
        return {"status": "ok" if age is not None and age < 30 else "starting" if age is None else "stalled",
                "address": self.account.address, "block": self.state.block, "seconds_since_loop": age,
                "dry_run": self.config.dry_run, "journal_entries": len(self.journal.entries),
                "idle_at_block": self.idle_at_block}


def run_keeper(args: argparse.Namespace) -> int:
    logger = setup("keeper", args.log_level)
    deployment = Deployment.load(args.deployment)
    client = SystemClient(args.rpc, deployment)
    signer = load_signer(args.key_env, args.keystore, args.password_env)
    account = Account.from_key(signer._account.key)
    config = KeeperConfig(
        oracle_url=args.oracle, batch_size=args.batch_size, margin_call_ratio=args.margin_call_ratio,
        poll_seconds=args.poll, dry_run=args.dry_run, liquidate_unprofitable=args.liquidate_unprofitable,
        min_profit=args.min_profit, webhooks=[w for w in (args.webhook or []) if w],
    )
    keeper = Keeper(client, OracleClient(args.oracle), account, config, Path(args.state_dir))
    server = JsonServer(args.host, args.port, keeper.registry)
    server.route("GET", "/health", lambda b, p, q: keeper.health())
    server.serve_in_thread()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: keeper.stop.set())
    event(logger, "keeper up", address=account.address, port=server.port, dry_run=config.dry_run,
          resumed_from_block=keeper.state.block)
    keeper.run()
    server.shutdown()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keeper = sub.add_parser("keeper", help="the keeper / liquidator daemon").add_subparsers(dest="keeper_command", metavar="ACTION")
    k = keeper.add_parser("run", help="watch, warn, liquidate, deleverage and settle")
    k.add_argument("--rpc", default="http://127.0.0.1:8545")
    k.add_argument("--deployment", required=True)
    k.add_argument("--oracle", required=True, help="oracle gateway (or single signer) base URL")
    k.add_argument("--key-env", help="environment variable holding the keeper's hex private key")
    k.add_argument("--keystore")
    k.add_argument("--password-env")
    k.add_argument("--state-dir", default="runs/keeper", help="cursor, journal and margin-call outbox")
    k.add_argument("--batch-size", type=int, default=10)
    k.add_argument("--margin-call-ratio", type=float, default=1.2, help="warn below equity / MM of this")
    k.add_argument("--poll", type=float, default=0.5, help="seconds between loops")
    k.add_argument("--dry-run", action="store_true", help="simulate and log, send nothing")
    k.add_argument("--liquidate-unprofitable", action="store_true", help="liquidate even when gas exceeds the bonus")
    k.add_argument("--min-profit", type=float, default=0.0)
    k.add_argument("--webhook", action="append", help="URL to POST margin-call warnings to (repeatable)")
    k.add_argument("--host", default="127.0.0.1")
    k.add_argument("--port", type=int, default=9200)
    k.add_argument("--log-level", default="INFO")
    k.set_defaults(handler=run_keeper)

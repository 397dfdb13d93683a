"""The keeper decides whether the insurance fund covers a deficit exactly as the contracts do,
in WAD integers, at the boundary: a deficit equal to the fund's balance and one wei either side.

- Bankruptcy beyond the fund (flag and deleverage, or liquidate through the fund): the keeper's
  verdict, reading the fund from a real Anvil node as it does before it sends, against
  flagBankruptcy's (FundCanCover when the fund covers the deficit).
- Clearing flags: the accounts whose flag the keeper tries to clear, against clearFlag's rule,
  with a fund of a million units where a float cannot tell one wei from the next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import pytest

from offchain.attest.signer import sign_bundle
from offchain.keeper.daemon import Keeper, KeeperConfig
from offchain.keeper.tracker import RetryTracker
from offchain.replica import ChainState
from offchain.risk.units import WAD

from .system import deploy_test_system
from .test_waterfall_anvil import Desk


class Functions:
    """`contract.functions.<name>(*args).call()` answered by plain Python functions."""

    def __init__(self, **answers: Callable[..., Any]) -> None:
        self.answers = answers

    def __getattr__(self, name: str) -> Callable[..., Any]:
        answer = self.answers[name]
        return lambda *args: SimpleNamespace(call=lambda: answer(*args))


def decisions_of(client: Any, state: ChainState | None = None) -> Keeper:
    """A keeper's decision logic over `client`, without its loop, sender, journal or stores."""
    keeper = Keeper.__new__(Keeper)
    keeper.client, keeper.state = client, state or ChainState()
    keeper.config = KeeperConfig(oracle_url="http://unused")
    keeper.sender = SimpleNamespace(pending={})
    keeper.duties = RetryTracker()
    keeper.flag_watch, keeper.below, keeper.verdicts = set(), {}, {}
    keeper._fund, keeper.seen_block, keeper.head = None, 0, 0
    return keeper


def test_the_keeper_clears_exactly_the_flags_clear_flag_accepts() -> None:
    fund = 10**24 + 7  # 1,000,000 units and 7 wei: as floats, fund and fund ± 1 wei are equal
    cash_only = {f"0x{k:040x}": -(fund + d) for k, d in enumerate((-1, 0, 1))}
    with_positions = {"0x" + "e1" * 20: -1, "0x" + "e0" * 20: 0}  # attested equity
    flagged = set(cash_only) | set(with_positions)

    def clear_flag_accepts(account: str) -> bool:
        """LiquidationEngine.clearFlag, as written: no positions → StillBankrupt when
        cash < 0 && uint256(-cash) > fundBalance; positions → StillBankrupt when equity < 0."""
        if account in cash_only:
            cash = cash_only[account]
            return not (cash < 0 and -cash > fund)
        return with_positions[account] >= 0

    client = SimpleNamespace(
        fund=SimpleNamespace(functions=Functions(fundBalance=lambda: fund, health=lambda: WAD)),
        ch=SimpleNamespace(
            functions=Functions(
                flagged=lambda a: a in flagged,
                openInstruments=lambda a: [1] if a in with_positions else [],
                cashOf=lambda a: cash_only.get(a, 0),
            )
        ),
    )
    keeper = decisions_of(client, ChainState(flagged=set(flagged)))
    tried: list[str] = []
    keeper._plan_clear_flag = lambda account: tried.append(account)
    rows = [
        {"account": a, "equity": e / WAD, "equity_wei": str(e), "ratio": 0.0, "state_hash": "0x" + "00" * 32}
        for a, e in with_positions.items()
    ]
    keeper.clear_flags({"accounts": rows, "flagged": sorted(flagged)})
    assert sorted(tried) == sorted(a for a in flagged if clear_flag_accepts(a))
    assert sorted(tried) == sorted([*list(cash_only)[:2], "0x" + "e0" * 20]), "deficit == fund is covered"


@pytest.mark.chain
def test_the_keeper_and_flag_bankruptcy_agree_on_the_fund_at_one_wei(anvil: Any, ape_chain: Any) -> None:
    from ape import accounts, reverts

    from offchain.chain.contracts import SystemClient

    system = deploy_test_system(n_signers=3, threshold=2)
    desk = Desk(system, anvil.url)
    ch, fund, engine, deployer = system.ch, system.fund, system.engine, system.deployer
    x, maker, caller = (accounts.test_accounts[i] for i in range(1, 4))
    desk.fund(x, 10_000)
    desk.fund(maker, 500_000)
    desk.buy_perp(x, maker, 10, 3000.0)
    seed = 1_000 * 10**6
    system.token.mint(deployer.address, seed, sender=deployer)
    system.token.approve(fund.address, seed, sender=deployer)
    fund.deposit(seed, sender=deployer)
    balance = int(fund.fundBalance())
    assert balance == seed * 10**12

    keeper = decisions_of(SystemClient(anvil.url, system.deployment))
    att, _ = desk.attest(x.address, 3000.0)
    cash = int(ch.cashOf(x.address))
    for deficit in (balance - 1, balance, balance + 1):
        # the oracle's statement of a portfolio worth exactly this deficit below zero
        bankrupt = replace(att, value=-deficit - cash)
        sigs = sign_bundle(system.oracle, system.domain, bankrupt)
        row = {"account": x.address, "state_hash": "0x" + att.state_hash.hex(), "equity_wei": str(-deficit)}
        beyond = keeper._beyond_fund(row)
        if beyond:
            engine.flagBankruptcy.call(x.address, bankrupt.as_tuple(), sigs, sender=caller)
        else:
            with reverts(engine.FundCanCover):
                engine.flagBankruptcy.call(x.address, bankrupt.as_tuple(), sigs, sender=caller)
        assert beyond == (deficit > balance), f"deficit {deficit - balance:+d} wei from the fund"

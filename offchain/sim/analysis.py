"""After a scenario run: read what happened from the chain, reconcile it, and measure the margin
model against the path the market took."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eth_typing import HexStr

import numpy as np

from offchain.chain.deploy import Deployment
from offchain.risk.book import Book, Portfolio
from offchain.risk.comparison import VarSettings, isolated_and_cross, var_es
from offchain.risk.instruments import InstrumentTable, parse_instrument
from offchain.risk.margin import portfolio_margin
from offchain.risk.market import MarketData
from offchain.risk.scenarios import price_instruments
from offchain.risk.units import WAD

if TYPE_CHECKING:
    from offchain.sim.desk import Desk
    from offchain.sim.population import TraderPlan
    from offchain.sim.run import ScenarioRun


def analyze_run(
    run: "ScenarioRun",
    desk: "Desk",
    deployment: Deployment,
    plans: list["TraderPlan"],
    people: dict[str, Any],
    market0: MarketData,
) -> None:
    data = run.data
    client = desk.client
    logs = client.logs(deployment.deploy_block, client.head())
    _events(data, logs)
    _unwinds(data, logs, people, client)
    _gas(data, desk, logs)
    _reconcile(data, desk, logs, deployment)
    _coverage_and_efficiency(run, market0)


def _events(data: Any, logs: list[Any]) -> None:
    liquidated = [e for e in logs if e.name == "Liquidated"]
    partial = [e for e in liquidated if int(e.args["fraction"]) < WAD]
    full = [e for e in liquidated if int(e.args["fraction"]) >= WAD]
    deleveraged = [e for e in logs if e.name == "Deleveraged"]
    completed = [e for e in logs if e.name == "DeleveragingCompleted"]
    covered = [e for e in logs if e.name == "BankruptcyCovered"]
    fees = [e for e in logs if e.contract == "fund" and e.name == "FeeReceived"]
    settled = [e for e in logs if e.name == "PositionSettled"]
    data.events = {
        "liquidations": len(liquidated),
        "partial_liquidations": len(partial),
        "full_liquidations": len(full),
        "accounts_liquidated": len({e.args["account"] for e in liquidated}),
        "bankruptcies_covered_by_fund": len(covered),
        "deficit_covered_by_fund": round(sum(int(e.args["coveredByFund"]) for e in covered) / WAD, 6),
        "insurance_fees": round(sum(int(e.args["amount"]) for e in fees) / WAD, 6),
        "bankruptcies_flagged": sum(1 for e in logs if e.name == "BankruptcyFlagged"),
        "adl_events": len(completed),
        "adl_steps": len(deleveraged),
        "adl_notional": round(
            sum(abs(int(e.args["amount"])) * int(e.args["bankruptcyPrice"]) for e in deleveraged) / WAD / WAD, 6
        ),
        "adl_haircut": round(sum(int(e.args["haircut"]) for e in completed) / WAD, 6),
        "adl_fund_contribution": round(sum(int(e.args["fundContribution"]) for e in completed) / WAD, 6),
        "adl_uncovered": round(sum(int(e.args.get("uncovered", 0)) for e in completed) / WAD, 6),
        "bankruptcies_cleared": sum(1 for e in logs if e.name == "BankruptcyCleared"),
        "stalls_reported": sum(1 for e in logs if e.name == "StallReported"),
        "backstop_closures": len(
            {e.args["account"] for e in logs if e.name == "StallReported"}
            & {e.args["account"] for e in completed if int(e.args["haircut"]) == 0}
        ),
        "settlement_deficits_absorbed": sum(1 for e in logs if e.name == "SettlementDeficitAbsorbed"),
        "positions_settled": len(settled),
        "settlement_payouts": round(sum(max(0, int(e.args["payout"])) for e in settled) / WAD, 6),
        "trades": sum(1 for e in logs if e.name == "OrderFilled"),
    }


def _unwinds(data: Any, logs: list[Any], people: dict[str, Any], client: Any) -> None:
    """What the keeper traded away to the market maker, and what it still holds at the end."""
    keeper, mm = people["keeper"].address, people["market_maker"].address
    fills = [e for e in logs if e.name == "OrderFilled" and e.args["taker"] == keeper and e.args["maker"] == mm]
    data.events["keeper_unwinds"] = len(fills)
    data.events["keeper_unwound_notional"] = round(
        sum(abs(int(e.args["makerSizeDelta"])) * int(e.args["price"]) for e in fills) / WAD / WAD, 6
    )
    data.events["keeper_positions_at_end"] = len(client.ch.functions.openInstruments(keeper).call())


def _gas(data: Any, desk: "Desk", logs: list[Any]) -> None:
    table: dict[str, list[int]] = {
        k: list(v) for k, v in desk.gas_by_action.items() if k in ("deposit", "fill", "withdraw", "feed")
    }
    kinds = {
        "Liquidated": "liquidate (batch tx)",
        "BankruptcyFlagged": "flagBankruptcy",
        "DeleveragingCompleted": "deleverage",
        "SettlementPricePosted": "postSettlementPrice",
        "PositionSettled": "settle (per account tx)",
    }
    seen: dict[str, str] = {}
    for e in logs:
        if e.name in kinds and e.tx not in seen:
            seen[e.tx] = kinds[e.name]
    for tx, kind in seen.items():
        receipt = desk.w3.eth.get_transaction_receipt(HexStr(tx))
        table.setdefault(kind, []).append(int(receipt["gasUsed"]))
    data.gas = {
        k: {"transactions": len(v), "mean_gas": round(float(np.mean(v))), "max_gas": int(max(v))}
        for k, v in sorted(table.items())
        if v
    }


def _reconcile(data: Any, desk: "Desk", logs: list[Any], deployment: Deployment) -> None:
    c = desk.client
    scale = 10 ** (18 - deployment.collateral_decimals)
    ch_tokens = int(c.token.functions.balanceOf(deployment.clearinghouse).call()) * scale
    total_cash = int(c.ch.functions.totalCash().call())
    fees = int(c.ch.functions.protocolFees().call())
    net_settle = int(c.ch.functions.netSettlementPayouts().call())
    fund_tokens = int(c.token.functions.balanceOf(deployment.insurance_fund).call()) * scale
    fund_balance = int(c.fund.functions.fundBalance().call())
    accounts = sorted({e.args["account"] for e in logs if e.name == "CashUpdated"})
    cash_sum = sum(int(c.ch.functions.cashOf(a).call()) for a in accounts)
    position_sums = {}
    for i, name in deployment.instruments.items():
        position_sums[name] = sum(int(c.ch.functions.positionOf(a, i).call()) for a in accounts)
    data.reconciliation = {
        "clearinghouse_tokens_wad": str(ch_tokens),
        "cash_plus_fees_minus_unmatched_settlement_wad": str(total_cash + fees - net_settle),
        "clearinghouse_balanced": ch_tokens == total_cash + fees - net_settle,
        "insurance_fund_tokens_wad": str(fund_tokens),
        "insurance_fund_balance_wad": str(fund_balance),
        "insurance_fund_balanced": fund_tokens == fund_balance,
        "sum_of_account_cash_equals_total": cash_sum == total_cash,
        "positions_sum_to_zero": all(v == 0 for v in position_sums.values()),
        "accounts": len(accounts),
        "withdrawals_gated_at_end": bool(c.ch.functions.withdrawalsGated().call()),
    }


def _coverage_and_efficiency(run: "ScenarioRun", market0: MarketData) -> None:
    from offchain.sim.run import PARAMS, _market

    data = run.data
    names = [a for a, r in data.initial.items() if r["positions"]]
    portfolios = [
        Portfolio({parse_instrument(n): float(s) for n, s in data.initial[a]["positions"].items()}) for a in names
    ]
    if not portfolios:
        return
    listed = sorted({i for p in portfolios for i in p.positions}, key=lambda i: i.name)
    table = InstrumentTable(listed)
    book = Book.from_portfolios(portfolios, table)
    fractions = [0.0] + [s.fraction for s in data.steps]
    values, mms = [], []
    for f in fractions:
        market = _market(run.scenario, f, market0.timestamp, (run.expiry,))
        risk = price_instruments(table, market, PARAMS)
        result = portfolio_margin(book, risk)
        values.append(result.value)
        mms.append(result.mm)
    v = np.array(values)  # (steps + 1, accounts)
    m = np.array(mms)
    largest_loss = np.maximum(v[0] - v.min(axis=0), 0.0)
    mm0 = np.array([data.initial[a]["mm"] for a in names])
    equity0 = np.array([data.initial[a]["equity"] for a in names])
    step_loss = np.maximum(v[:-1] - v[1:], 0.0)  # loss over each step of the path
    step_ratio = np.where(m[:-1] > 0, step_loss / np.maximum(m[:-1], 1e-9), 0.0)
    ratio = np.where(mm0 > 0, largest_loss / np.maximum(mm0, 1e-9), 0.0)
    data.coverage = {
        "accounts": len(names),
        "whole_path_loss_above_mm": int(np.sum(largest_loss > mm0 + 1e-9)),
        "whole_path_loss_above_equity": int(np.sum(largest_loss > equity0 + 1e-9)),
        "whole_path_median_loss_over_mm": round(float(np.median(ratio)), 4),
        "whole_path_worst_loss_over_mm": round(float(np.max(ratio)), 4),
        "one_step_breaches": int(np.sum(step_loss > m[:-1] + 1e-9)),
        "one_step_account_steps": int(step_loss.size),
        "one_step_worst_loss_over_mm": round(float(np.max(step_ratio)), 4),
        "per_account": [
            {
                "account": a,
                "kind": data.initial[a]["kind"],
                "largest_loss": round(float(largest_loss[k]), 4),
                "mm": round(float(mm0[k]), 4),
                "equity": round(float(equity0[k]), 4),
            }
            for k, a in enumerate(names)
        ],
    }
    # Capital efficiency: the same books under each model, summed by book type.
    risk0 = price_instruments(table, market0, PARAMS)
    pm = portfolio_margin(book, risk0)
    comp = isolated_and_cross(book, risk0)
    var = var_es(book, risk0, VarSettings(paths=20_000, seed=run.config.seed))
    rows: dict[str, dict[str, float]] = {}
    for k, a in enumerate(names):
        kind = data.initial[a]["kind"]
        r = rows.setdefault(
            kind, {"books": 0, "portfolio": 0.0, "cross": 0.0, "isolated": 0.0, "var99": 0.0, "es99": 0.0}
        )
        r["books"] += 1
        r["portfolio"] += float(pm.im[k])
        r["cross"] += float(comp.cross_im[k])
        r["isolated"] += float(comp.isolated_im[k])
        r["var99"] += float(var.var[k])
        r["es99"] += float(var.es[k])
    total = {"books": 0, "portfolio": 0.0, "cross": 0.0, "isolated": 0.0, "var99": 0.0, "es99": 0.0}
    for r in rows.values():
        for key in total:
            total[key] += r[key]
    data.efficiency = [{"book": k, **{kk: round(vv, 2) for kk, vv in r.items()}} for k, r in sorted(rows.items())]
    data.efficiency.append({"book": "all books", **{kk: round(vv, 2) for kk, vv in total.items()}})
    # Tail cover: books whose worst single-step loss on the path exceeded each model's requirement.
    worst_step = step_loss.max(axis=0)
    data.coverage["worst_step_loss_above_requirement"] = {
        "portfolio": int(np.sum(worst_step > pm.im + 1e-9)),
        "cross": int(np.sum(worst_step > comp.cross_im + 1e-9)),
        "isolated": int(np.sum(worst_step > comp.isolated_im + 1e-9)),
        "var99": int(np.sum(worst_step > var.var + 1e-9)),
        "es99": int(np.sum(worst_step > var.es + 1e-9)),
    }

"""The run's report: Markdown with PNG charts, a deterministic summary.json (same seed and
scenario → same file) and timings.json (wall-clock figures, which vary by machine)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from offchain.sim.run import RunData  # noqa: E402


def deterministic_summary(data: RunData) -> dict[str, Any]:
    return {
        "scenario": data.scenario["name"],
        "config": {k: v for k, v in data.config.items() if k not in ("out", "port")},
        "events": data.events,
        "fund_balance_by_step": [round(s.fund_balance, 6) for s in data.steps],
        "liquidations_by_step": [s.liquidations for s in data.steps],
        "gas": data.gas,
        "reconciliation": data.reconciliation,
        "coverage": {k: v for k, v in data.coverage.items() if k != "per_account"},
        "capital_efficiency": data.efficiency,
        "rejected_trade_legs": data.rejected_trades,
    }


def _charts(data: RunData, out: Path) -> list[str]:
    files = []
    steps = [0] + [s.step for s in data.steps]
    eth = [float("nan")] + [s.prices["ETH"] for s in data.steps]
    vol = [float("nan")] + [s.vols["ETH"] for s in data.steps]
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(steps[1:], eth[1:], marker="o", color="tab:blue", label="ETH spot")
    ax.set_xlabel("scenario step")
    ax.set_ylabel("ETH spot")
    ax2 = ax.twinx()
    ax2.bar(
        [s.step for s in data.steps],
        [s.liquidations for s in data.steps],
        alpha=0.3,
        color="tab:red",
        label="liquidations",
    )
    ax2.set_ylabel("liquidations in the step")
    ax.set_title(
        f"{data.scenario['name']}: price path and liquidations (ETH ATM vol up to {max(v for v in vol if v):.0%})"
    )
    fig.tight_layout()
    fig.savefig(out / "price_and_liquidations.png", dpi=110)
    plt.close(fig)
    files.append("price_and_liquidations.png")

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([s.step for s in data.steps], [s.fund_balance for s in data.steps], marker="o", color="tab:green")
    ax.set_xlabel("scenario step")
    ax.set_ylabel("insurance fund balance")
    ax.set_title("Insurance fund over the scenario (fees in, deficits out; ADL only once it is empty)")
    ax.axhline(0, color="grey", lw=0.8)
    fig.tight_layout()
    fig.savefig(out / "insurance_fund.png", dpi=110)
    plt.close(fig)
    files.append("insurance_fund.png")

    rows = [r for r in data.efficiency if r["book"] != "all books"]
    if rows:
        fig, ax = plt.subplots(figsize=(9, 4))
        x = range(len(rows))
        width = 0.27
        for k, (model, color) in enumerate(
            (("portfolio", "tab:green"), ("cross", "tab:orange"), ("isolated", "tab:red"))
        ):
            ax.bar([i + (k - 1) * width for i in x], [r[model] for r in rows], width, label=model, color=color)
        ax.set_xticks(list(x))
        ax.set_xticklabels([r["book"] for r in rows], rotation=25, ha="right", fontsize=8)
        ax.set_ylabel("initial margin required (sum over books)")
        ax.set_title("Capital efficiency: the same books under three margin models")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "capital_efficiency.png", dpi=110)
        plt.close(fig)
        files.append("capital_efficiency.png")

    per = data.coverage.get("per_account", [])
    if per:
        fig, ax = plt.subplots(figsize=(6, 5))
        mm = [p["mm"] for p in per]
        loss = [p["largest_loss"] for p in per]
        ax.scatter(mm, loss, s=10, alpha=0.6)
        top = max(max(mm), max(loss)) * 1.05
        ax.plot([0, top], [0, top], color="grey", lw=0.8, label="loss = MM")
        ax.set_xlabel("maintenance margin held at the start")
        ax.set_ylabel("largest loss of the book over the scenario")
        ax.set_title("Margin coverage (points above the line: the path outran MM)")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out / "margin_coverage.png", dpi=110)
        plt.close(fig)
        files.append("margin_coverage.png")
    return files


def write_report(data: RunData, out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    summary = deterministic_summary(data)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    timings = {
        "wall_seconds": round(data.timings.get("wall_seconds", 0.0), 1),
        "keeper_seconds_by_step": [round(s.keeper_seconds, 2) for s in data.steps],
    }
    (out / "timings.json").write_text(json.dumps(timings, indent=2) + "\n")
    (out / "steps.json").write_text(json.dumps([asdict(s) for s in data.steps], indent=2) + "\n")
    charts = _charts(data, out)
    e, r, c = data.events, data.reconciliation, data.coverage
    reacting = [s.keeper_seconds for s in data.steps if s.liquidations]
    lines = [
        f"# DPRE run: {data.scenario['name']}",
        "",
        data.scenario["description"],
        "",
        f"{data.config['traders']} traders, seed {data.config['seed']}, {len(data.steps)} scenario steps; "
        f"wall time {timings['wall_seconds']:.0f} s.",
        "",
        "## What happened",
        "",
        "| | |",
        "| --- | --- |",
        f"| trades | {e.get('trades', 0)} ({data.rejected_trades} legs refused for lack of margin) |",
        f"| liquidations | {e.get('liquidations', 0)} ({e.get('partial_liquidations', 0)} partial, {e.get('full_liquidations', 0)} full) over {e.get('accounts_liquidated', 0)} accounts |",
        f"| bankruptcies covered by the insurance fund | {e.get('bankruptcies_covered_by_fund', 0)} (deficits {e.get('deficit_covered_by_fund', 0):,.2f}) |",
        f"| insurance fees received | {e.get('insurance_fees', 0):,.2f} |",
        f"| auto-deleveraging | {e.get('adl_events', 0)} bankrupt accounts, {e.get('adl_steps', 0)} counterparties, notional {e.get('adl_notional', 0):,.2f}, haircut {e.get('adl_haircut', 0):,.2f} |",
        f"| who took the liquidated portfolios | keepers {e.get('liquidations', 0)} liquidations; backstop (no keeper took it within "
        f"60 s of a stall report: closed against the ADL queue at the marks) {e.get('backstop_closures', 0)} accounts "
        f"({e.get('stalls_reported', 0)} stall reports); ADL for bankruptcies beyond the fund "
        f"{e.get('adl_events', 0) - e.get('backstop_closures', 0)} |",
        f"| keeper unwinding (what it took, traded to a market maker 25 bps from the mark) | "
        f"{e.get('keeper_unwinds', 0)} trades, notional {e.get('keeper_unwound_notional', 0):,.2f}; "
        f"positions the keeper holds at the end: {e.get('keeper_positions_at_end', 0)} |",
        f"| bad debt left unresolved (flagged, waiting for the fund) | {e.get('adl_uncovered', 0):,.2f} |",
        f"| positions settled at expiry | {e.get('positions_settled', 0)} (settlement deficits absorbed: "
        f"{e.get('settlement_deficits_absorbed', 0)}) |",
        "| keeper reaction (price move → nothing left to do), steps with liquidations | "
        + (
            f"mean {sum(reacting) / len(reacting):.2f} s, max {max(reacting):.2f} s |"
            if reacting
            else "no liquidations |"
        ),
        "",
        "![price and liquidations](price_and_liquidations.png)",
        "",
        "![insurance fund](insurance_fund.png)",
        "",
        "## Steps",
        "",
        "| step | ETH | ETH vol | BTC | liquidations | below MM after | fund | keeper s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in data.steps:
        lines.append(
            f"| {s.step} | {s.prices['ETH']:,.0f} | {s.vols['ETH']:.0%} | {s.prices['BTC']:,.0f} | {s.liquidations} | "
            f"{s.at_risk_after} | {s.fund_balance:,.2f} | {s.keeper_seconds:.1f} |"
        )
    lines += ["", "## Gas by action", "", "| action | transactions | mean gas | max gas |", "| --- | --- | --- | --- |"]
    for k, g in data.gas.items():
        lines.append(f"| {k} | {g['transactions']} | {g['mean_gas']:,} | {g['max_gas']:,} |")
    if c:
        lines += [
            "",
            "## Margin coverage",
            "",
            f"For each of {c['accounts']} books as opened, the largest loss along the scenario path (no liquidation) "
            "against the maintenance margin it held at the start:",
            "",
            f"- whole path: loss above MM for {c['whole_path_loss_above_mm']} books, above their whole equity for "
            f"{c['whole_path_loss_above_equity']}; median loss / MM {c['whole_path_median_loss_over_mm']}, worst {c['whole_path_worst_loss_over_mm']}",
            f"- one step at a time (the liquidation horizon): {c['one_step_breaches']} of {c['one_step_account_steps']} "
            f"account-steps lost more than the MM held before the step; worst loss / MM {c['one_step_worst_loss_over_mm']}",
            "",
            "![margin coverage](margin_coverage.png)",
        ]
    if data.efficiency:
        lines += [
            "",
            "## Capital efficiency",
            "",
            "Initial margin the same books need under each model (VaR / ES: 99%, 1 day, Monte Carlo):",
            "",
            "| book | books | portfolio | cross | isolated | VaR 99% | ES 99% |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in data.efficiency:
            lines.append(
                f"| {row['book']} | {row['books']} | {row['portfolio']:,.0f} | {row['cross']:,.0f} | {row['isolated']:,.0f} | "
                f"{row['var99']:,.0f} | {row['es99']:,.0f} |"
            )
        tail = c.get("worst_step_loss_above_requirement") if c else None
        if tail:
            lines += [
                "",
                f"Books whose worst single-step loss on this path exceeded the model's requirement (of {c['accounts']}): "
                f"portfolio {tail['portfolio']}, cross {tail['cross']}, isolated {tail['isolated']}, "
                f"VaR 99% {tail['var99']}, ES 99% {tail['es99']}.",
            ]
        lines += ["", "![capital efficiency](capital_efficiency.png)"]
    lines += [
        "",
        "## Reconciliation",
        "",
        f"- clearinghouse: tokens held {int(r['clearinghouse_tokens_wad']) / 1e18:,.6f} = Σ cash + fees − unmatched settlement "
        f"{int(r['cash_plus_fees_minus_unmatched_settlement_wad']) / 1e18:,.6f} → **{'balanced to the wei' if r['clearinghouse_balanced'] else 'MISMATCH'}**",
        f"- insurance fund: tokens {int(r['insurance_fund_tokens_wad']) / 1e18:,.6f} = balance {int(r['insurance_fund_balance_wad']) / 1e18:,.6f} → "
        f"**{'balanced to the wei' if r['insurance_fund_balanced'] else 'MISMATCH'}**",
        f"- Σ account cash = total cash: {r['sum_of_account_cash_equals_total']}; positions sum to zero in every instrument: {r['positions_sum_to_zero']}",
        "",
        f"Charts: {', '.join(charts)}. Deterministic figures: summary.json; wall-clock figures: timings.json.",
    ]
    report = "\n".join(lines) + "\n"
    (out / "report.md").write_text(report)
    return report


def console_summary(data: RunData, out: Path) -> str:
    e, r, c = data.events, data.reconciliation, data.coverage
    total = next((row for row in data.efficiency if row["book"] == "all books"), None)
    lines = [
        "",
        f"== {data.scenario['name']}: {data.config['traders']} traders, {len(data.steps)} steps, {data.timings.get('wall_seconds', 0):.0f} s ==",
        f"liquidations      {e.get('liquidations', 0)} ({e.get('partial_liquidations', 0)} partial, {e.get('full_liquidations', 0)} full), "
        f"{e.get('accounts_liquidated', 0)} accounts",
        f"bankruptcies      {e.get('bankruptcies_covered_by_fund', 0)} covered by the fund; ADL {e.get('adl_events', 0)} "
        f"(notional {e.get('adl_notional', 0):,.2f}); backstop closures {e.get('backstop_closures', 0)}",
        f"insurance fund    {data.steps[0].fund_balance if data.steps else 0:,.2f} → {data.steps[-1].fund_balance if data.steps else 0:,.2f}",
    ]
    if c:
        lines.append(
            f"margin coverage   one-step breaches {c['one_step_breaches']}/{c['one_step_account_steps']}; whole path above MM "
            f"{c['whole_path_loss_above_mm']}/{c['accounts']} books"
        )
    if total:
        lines.append(
            f"capital (IM)      portfolio {total['portfolio']:,.0f} | cross {total['cross']:,.0f} | isolated {total['isolated']:,.0f}"
        )
    tail = c.get("worst_step_loss_above_requirement") if c else None
    if tail:
        lines.append(
            f"tail cover        books whose worst step lost more than the requirement: portfolio {tail['portfolio']}, "
            f"cross {tail['cross']}, isolated {tail['isolated']}, VaR {tail['var99']}, ES {tail['es99']}"
        )
    lines.append(
        f"reconciliation    clearinghouse {'OK' if r.get('clearinghouse_balanced') else 'MISMATCH'}, fund "
        f"{'OK' if r.get('insurance_fund_balanced') else 'MISMATCH'}, positions zero-sum {r.get('positions_sum_to_zero')}"
    )
    lines.append(
        f"replicas          {int(data.timings.get('replica_checks', 0))} checks, every signer equal to the "
        f"contract's stored state"
    )
    lines.append(f"report            {out / 'report.md'}")
    return "\n".join(lines)

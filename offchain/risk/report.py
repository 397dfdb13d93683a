"""One account's full risk picture: margin, where it comes from, and what other models would ask.

`analyze` returns plain JSON-ready data (the `dpre margin --json` output and the oracle's
response body); `format_text` renders it for a terminal.
"""

from __future__ import annotations

from typing import Any

from offchain.risk.book import Book, Portfolio
from offchain.risk.comparison import VarSettings, isolated_and_cross, var_es
from offchain.risk.margin import greek_margin, portfolio_margin
from offchain.risk.market import MarketData
from offchain.risk.params import MarginParams
from offchain.risk.scenarios import price_instruments
from offchain.risk.units import to_wad_down, to_wad_up


def analyze(
    portfolio: Portfolio, market: MarketData, params: MarginParams, var_settings: VarSettings = VarSettings()
) -> dict[str, Any]:
    book = Book.from_portfolios([portfolio])
    risk = price_instruments(book.table, market, params)
    pm = portfolio_margin(book, risk, want_worst=True)
    greeks = greek_margin(book, risk)
    comp = isolated_and_cross(book, risk)
    var = var_es(book, risk, var_settings)
    table = book.table

    equity, mm, im = float(pm.equity[0]), float(pm.mm[0]), float(pm.im[0])
    status = (
        "healthy"
        if equity >= im
        else ("below initial margin" if equity >= mm else "below maintenance margin: liquidatable")
    )
    underlyings = []
    for u, name in enumerate(table.underlyings):
        sc = risk.scenarios[u]
        worst = int(pm.worst_scenario[0, u]) if pm.worst_scenario is not None else 0
        underlyings.append(
            {
                "underlying": name,
                "spot": market.get(name).spot,
                "spot_shock": params.spot_shock(name),
                "scenario_loss": float(pm.scenario_loss[0, u]),
                "worst_scenario": sc.label(worst) if pm.scenario_loss[0, u] > 0 else "none (no scenario loses)",
                "short_option_addon": float(pm.short_option_addon[0, u]),
                "perp_addon": float(pm.perp_addon[0, u]),
                "greeks": {
                    "delta": float(greeks.delta[0, u]),
                    "gamma": float(greeks.gamma[0, u]),
                    "vega": float(greeks.vega[0, u]),
                    "theta_per_day": float(greeks.theta[0, u]) / 365.0,
                },
                "greek_margin": {
                    "delta": float(greeks.delta_margin[0, u]),
                    "gamma": float(greeks.gamma_margin[0, u]),
                    "vega": float(greeks.vega_margin[0, u]),
                },
            }
        )
    positions = [
        {
            "instrument": inst.name,
            "size": float(book.q[0, i]),
            "mark": float(risk.marks[i]),
            "value": float(book.q[0, i] * risk.marks[i]),
        }
        for i, inst in enumerate(table.instruments)
        if book.q[0, i] != 0
    ]
    return {
        "account": portfolio.account,
        "market_timestamp": market.timestamp,
        "params_version": params.version,
        "params_hash": "0x" + params.params_hash().hex(),
        "cash": portfolio.cash,
        "value": float(pm.value[0]),
        "equity": equity,
        "initial_margin": im,
        "maintenance_margin": mm,
        "status": status,
        "positions": positions,
        "underlyings": underlyings,
        "comparison": {
            "portfolio": {"im": im, "mm": mm},
            "isolated": {"im": float(comp.isolated_im[0]), "mm": float(comp.isolated_mm[0])},
            "cross": {"im": float(comp.cross_im[0]), "mm": float(comp.cross_mm[0])},
            "var": {
                "confidence": var_settings.confidence,
                "horizon_days": var_settings.horizon_days,
                "paths": var_settings.paths,
                "var": float(var.var[0]),
                "expected_shortfall": float(var.es[0]),
            },
        },
        "onchain": {
            "value_wad": str(to_wad_down(float(pm.value[0]))),
            "initial_margin_wad": str(to_wad_up(im)),
            "maintenance_margin_wad": str(to_wad_up(mm)),
        },
    }


def _money(x: float) -> str:
    return f"{x:,.2f}"


def format_text(r: dict[str, Any]) -> str:
    lines = [
        f"account            {r['account'] or '(unnamed)'}",
        f"status             {r['status']}",
        f"cash               {_money(r['cash'])}",
        f"positions value    {_money(r['value'])}",
        f"equity             {_money(r['equity'])}",
        f"initial margin     {_money(r['initial_margin'])}",
        f"maintenance margin {_money(r['maintenance_margin'])}",
        f"risk parameters    v{r['params_version']} {r['params_hash'][:18]}…",
        "",
        "positions",
    ]
    for p in r["positions"]:
        lines.append(f"  {p['instrument']:<24} {p['size']:>12,.4f} @ {p['mark']:>12,.4f} = {_money(p['value']):>14}")
    for u in r["underlyings"]:
        g, gm = u["greeks"], u["greek_margin"]
        lines += [
            "",
            f"{u['underlying']} (spot {_money(u['spot'])}, shock ±{u['spot_shock']:.0%})",
            f"  scenario loss      {_money(u['scenario_loss'])}   worst: {u['worst_scenario']}",
            f"  short-option add-on {_money(u['short_option_addon'])}   perp add-on {_money(u['perp_addon'])}",
            f"  greeks             delta {g['delta']:+,.4f}  gamma {g['gamma']:+.6f}  vega {g['vega']:+,.2f}  theta/day {g['theta_per_day']:+,.2f}",
            f"  greek margin       delta {_money(gm['delta'])}  gamma {_money(gm['gamma'])}  vega {_money(gm['vega'])}",
        ]
    c = r["comparison"]
    v = c["var"]
    lines += [
        "",
        "model comparison (requirement beyond the positions' value)",
        f"  {'model':<28}{'IM':>14}{'MM':>14}",
        f"  {'portfolio (enforced)':<28}{_money(c['portfolio']['im']):>14}{_money(c['portfolio']['mm']):>14}",
        f"  {'isolated':<28}{_money(c['isolated']['im']):>14}{_money(c['isolated']['mm']):>14}",
        f"  {'cross (standard rates)':<28}{_money(c['cross']['im']):>14}{_money(c['cross']['mm']):>14}",
        f"  {'VaR ' + format(v['confidence'], '.0%') + ' ' + format(v['horizon_days'], 'g') + 'd':<28}{_money(v['var']):>14}",
        f"  {'ES  ' + format(v['confidence'], '.0%') + ' ' + format(v['horizon_days'], 'g') + 'd':<28}{_money(v['expected_shortfall']):>14}",
    ]
    return "\n".join(lines)

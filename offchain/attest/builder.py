"""From on-chain portfolio state to a margin attestation: the oracle's computation, minus I/O.

Given an account's positions (instrument id → signed WAD size), the instrument registry, a
market snapshot and the risk parameters, the engine computes value, IM and MM; they are turned
into integers once (value rounded down, requirements up) and wrapped with the state hash, the
snapshot time and a deadline. Anyone with the same public inputs gets the same integers, up to
the float noise of another platform that signers reconcile by co-signing (offchain/oracle/cosign.py).

Fault injection (tests of that reconciliation; off by default): DPRE_PERTURB_ULPS=N in a
signer's environment moves every float result N ulps toward the conservative side (value down,
IM and MM up; N < 0 the other way) just before it becomes an integer, as a signer on another
numpy build might compute it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

from offchain.attest.errors import AttestationError
from offchain.attest.messages import MarginAttestation
from offchain.risk.black76 import intrinsic
from offchain.risk.book import Portfolio
from offchain.risk.instruments import Instrument
from offchain.risk.margin import margin_of, margins_of
from offchain.risk.market import MarketData
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD, to_wad_down, to_wad_up

SettlementPrices = Mapping[tuple[str, int], float]

PERTURB_ULPS = int(os.environ.get("DPRE_PERTURB_ULPS", "0") or 0)


def _nudged(x: float, ulps: int) -> float:
    for _ in range(abs(ulps)):
        x = math.nextafter(x, math.inf if ulps > 0 else -math.inf)
    return x


def _integers(value: float, im: float, mm: float) -> tuple[int, int, int]:
    """The one place the engine's floats become the integers signers sign: value rounded down,
    requirements up."""
    if PERTURB_ULPS:
        value, im, mm = _nudged(value, -PERTURB_ULPS), _nudged(im, PERTURB_ULPS), _nudged(mm, PERTURB_ULPS)
    return to_wad_down(value), to_wad_up(im), to_wad_up(mm)


def margin_numbers(
    positions: Mapping[int, int],
    registry: Mapping[int, Instrument],
    market: MarketData,
    params: MarginParams,
    settlement_prices: SettlementPrices | None = None,
) -> tuple[int, int, int]:
    """(value, IM, MM) in WAD for a portfolio of on-chain positions.

    Options past expiry but not yet settled are worth their intrinsic value at the posted
    settlement price and need no margin (their payoff is fixed).
    """
    live: dict[Instrument, float] = {}
    expired_value = 0.0
    # Instrument-id order, not insertion order: the float sums are then the same on every replica.
    for instrument_id, size in sorted(positions.items()):
        if size == 0:
            continue
        try:
            inst = registry[instrument_id]
        except KeyError:
            raise AttestationError(f"instrument id {instrument_id} is not in the registry") from None
        if inst.is_option and inst.expiry <= market.timestamp:
            price = (settlement_prices or {}).get((inst.underlying, inst.expiry))
            if price is None:
                raise AttestationError(f"{inst.name} has expired and has no settlement price yet")
            expired_value += size / WAD * float(intrinsic(price, inst.strike, inst.kind.name == "CALL"))
            continue
        live[inst] = live.get(inst, 0.0) + size / WAD
    if live:
        result = margin_of(Portfolio(live), market, params)
        value, mm, im = float(result.value[0]), float(result.mm[0]), float(result.im[0])
    else:
        value = mm = im = 0.0
    return _integers(value + expired_value, im, mm)


def margin_attestation(
    account: str,
    state_hash: bytes,
    positions: Mapping[int, int],
    registry: Mapping[int, Instrument],
    market: MarketData,
    params: MarginParams,
    *,
    ttl_seconds: int = 60,
    settlement_prices: SettlementPrices | None = None,
) -> MarginAttestation:
    value, im, mm = margin_numbers(positions, registry, market, params, settlement_prices)
    return MarginAttestation(
        account=account,
        state_hash=state_hash,
        value=value,
        initial_margin=im,
        maintenance_margin=mm,
        snapshot_time=market.timestamp,
        deadline=market.timestamp + ttl_seconds,
        params_version=params.version,
    )


def margin_numbers_batch(
    portfolios: Mapping[str, Mapping[int, int]],
    registry: Mapping[int, Instrument],
    market: MarketData,
    params: MarginParams,
    settlement_prices: SettlementPrices | None = None,
) -> dict[str, tuple[int, int, int]]:
    """margin_numbers for many accounts at once: one repricing, one sparse aggregation.

    Accounts holding an unlisted instrument, an underlying without market data or an expired
    option without a settlement price are left out (the caller reports them).
    """
    live: list[Portfolio] = []
    names: list[str] = []
    expired_values: list[float] = []
    for account, positions in portfolios.items():
        holdings: dict[Instrument, float] = {}
        expired = 0.0
        usable = True
        for instrument_id, size in sorted(positions.items()):
            if size == 0:
                continue
            inst = registry.get(instrument_id)
            if inst is None:  # as margin_numbers refuses it: left out, the caller reports it
                usable = False
                break
            if inst.is_option and inst.expiry <= market.timestamp:
                price = (settlement_prices or {}).get((inst.underlying, inst.expiry))
                if price is None:
                    usable = False
                    break
                expired += size / WAD * float(intrinsic(price, inst.strike, inst.kind.name == "CALL"))
                continue
            if inst.underlying not in market.underlyings:
                usable = False
                break
            holdings[inst] = holdings.get(inst, 0.0) + size / WAD
        if usable:
            live.append(Portfolio(holdings, account=account))
            names.append(account)
            expired_values.append(expired)
    if not live:
        return {}
    listed = [
        i
        for i in registry.values()
        if not (i.is_option and i.expiry <= market.timestamp) and i.underlying in market.underlyings
    ]
    from offchain.risk.instruments import InstrumentTable

    result = margins_of(live, market, params, InstrumentTable(sorted(set(listed), key=lambda i: i.name)))
    return {
        name: _integers(float(result.value[k]) + expired_values[k], float(result.im[k]), float(result.mm[k]))
        for k, name in enumerate(names)
    }

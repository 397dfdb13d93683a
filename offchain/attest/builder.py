"""From on-chain portfolio state to a margin attestation: the oracle's computation, minus I/O.

Given an account's positions (instrument id → signed WAD size), the instrument registry, a
market snapshot and the risk parameters, the engine computes value, IM and MM; they are turned
into integers once (value rounded down, requirements up) and wrapped with the state hash, the
snapshot time and a deadline. Anyone with the same public inputs gets the same integers.
"""

from __future__ import annotations

from collections.abc import Mapping

from offchain.attest.messages import MarginAttestation
from offchain.errors import UserError
from offchain.risk.black76 import intrinsic
from offchain.risk.book import Portfolio
from offchain.risk.instruments import Instrument
from offchain.risk.margin import margin_of
from offchain.risk.market import MarketData
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD, to_wad_down, to_wad_up

SettlementPrices = Mapping[tuple[str, int], float]


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
    for instrument_id, size in positions.items():
        if size == 0:
            continue
        try:
            inst = registry[instrument_id]
        except KeyError:
            raise UserError(f"instrument id {instrument_id} is not in the registry") from None
        if inst.is_option and inst.expiry <= market.timestamp:
            price = (settlement_prices or {}).get((inst.underlying, inst.expiry))
            if price is None:
                raise UserError(f"{inst.name} has expired and has no settlement price yet")
            expired_value += size / WAD * float(intrinsic(price, inst.strike, inst.kind.name == "CALL"))
            continue
        live[inst] = live.get(inst, 0.0) + size / WAD
    if live:
        result = margin_of(Portfolio(live), market, params)
        value, mm, im = float(result.value[0]), float(result.mm[0]), float(result.im[0])
    else:
        value = mm = im = 0.0
    return to_wad_down(value + expired_value), to_wad_up(im), to_wad_up(mm)


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

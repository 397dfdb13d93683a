"""The RiskConfig struct is decoded in one place (OnchainRiskConfig.from_chain), by member name
whenever the tooling gives names, whatever form the struct arrives in."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from offchain.attest.liquidation import LiquidationConfig
from offchain.chain.deploy import OnchainRiskConfig, read_risk_config

CONFIG = OnchainRiskConfig(
    params_version=3,
    max_snapshot_age=600,
    snapshot_tolerance=20,
    max_positions=8,
    taker_fee=1,
    liquidation_buffer=2,
    liquidator_bonus=3,
    insurance_fee=4,
    dust_margin=5,
)


def test_every_form_of_the_struct_decodes_to_the_same_config() -> None:
    by_member = CONFIG.by_member()
    assert list(by_member) == list(OnchainRiskConfig.MEMBERS)
    assert by_member["snapshotTolerance"] == 20 and by_member["paramsVersion"] == 3
    assert OnchainRiskConfig.from_chain(CONFIG.as_tuple()) == CONFIG  # a web3 call's result
    assert OnchainRiskConfig.from_chain(dict(reversed(by_member.items()))) == CONFIG  # an event's, by name
    assert OnchainRiskConfig.from_chain(SimpleNamespace(**by_member)) == CONFIG  # an ape struct's attributes
    with pytest.raises(ValueError, match="9 members"):
        OnchainRiskConfig.from_chain(CONFIG.as_tuple()[:8])


def test_the_chain_read_and_the_liquidation_terms_use_the_typed_config() -> None:
    class Clearinghouse:  # a web3 contract's riskConfig() at a block
        class functions:
            @staticmethod
            def riskConfig() -> SimpleNamespace:
                return SimpleNamespace(call=lambda block_identifier: CONFIG.as_tuple() if block_identifier == 7 else ())

    assert read_risk_config(Clearinghouse, 7) == CONFIG
    assert LiquidationConfig.from_risk_config(CONFIG) == LiquidationConfig(buffer=2, bonus=3, fee=4, dust=5)

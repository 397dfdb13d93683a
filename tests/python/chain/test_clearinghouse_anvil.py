"""The clearinghouse on a real Anvil node, driven from Python: what Python signs, the contract
accepts, byte for byte; a trader deposits, trades, is refused an over-withdrawal and withdraws
within limits, with attestations computed by the risk engine and signed by Python-held keys."""

from __future__ import annotations

import random
from typing import Any

import pytest

from offchain.attest.builder import margin_attestation
from offchain.attest.eip712 import digest, signer_of
from offchain.attest.commitment import leaf_of
from offchain.attest.messages import MarginAttestation, Order, SettlementPrice, SnapshotCommitment
from offchain.attest.signer import LocalSigner, sign_bundle
from offchain.attest.state_hash import ZERO_HASH, chain_state_hash, next_state_hash, underlying_to_bytes32
from offchain.risk.params import MarginParams
from offchain.risk.units import WAD

from .system import System, deploy_test_system

pytestmark = pytest.mark.chain
PARAMS = MarginParams()


@pytest.fixture
def system(ape_chain: Any) -> System:
    return deploy_test_system(n_signers=3, threshold=2)


def _fund(system: System, account: Any, units: int) -> None:
    amount = units * 10**6
    system.token.mint(account.address, amount, sender=system.deployer)
    system.token.approve(system.ch.address, amount, sender=account)
    system.ch.deposit(account.address, amount, sender=account)


def _positions(system: System, account: str) -> dict[int, int]:
    return {int(i): int(system.ch.positionOf(account, i)) for i in system.ch.openInstruments(account)}


def test_python_digests_equal_contract_digests(system: System) -> None:
    from ape import project

    lens = system.deployer.deploy(project.AttestationDigests, system.ch.address)
    rng = random.Random(7)
    for _ in range(10):
        att = MarginAttestation(
            account="0x" + rng.randbytes(20).hex(),
            state_hash=rng.randbytes(32),
            value=rng.randint(-(2**200), 2**200),
            initial_margin=rng.randint(0, 2**200),
            maintenance_margin=rng.randint(0, 2**200),
            snapshot_time=rng.randint(0, 2**63),
            deadline=rng.randint(0, 2**63),
            params_version=rng.randint(0, 2**32 - 1),
        )
        assert digest(system.domain, att) == bytes(lens.marginAttestationDigest(att.as_tuple()))
        order = Order(
            "0x" + rng.randbytes(20).hex(),
            rng.randint(0, 2**64),
            rng.randint(-(2**200), 2**200),
            rng.randint(0, 2**200),
            rng.randint(0, 2**64),
            rng.randint(0, 2**63),
        )
        assert digest(system.domain, order) == bytes(lens.orderDigest(order.as_tuple()))
        price = SettlementPrice(
            underlying_to_bytes32("ETH"), rng.randint(0, 2**63), rng.randint(0, 2**200), rng.randint(0, 2**63)
        )
        assert digest(system.domain, price) == bytes(lens.settlementPriceDigest(price.as_tuple()))
        commitment = SnapshotCommitment(
            rng.randbytes(32),
            rng.randint(0, 2**63),
            rng.randint(0, 2**63),
            rng.randint(0, 2**32 - 1),
            rng.randint(0, 2**32 - 1),
        )
        assert digest(system.domain, commitment) == bytes(lens.commitmentDigest(commitment.as_tuple()))
        assert leaf_of(att) == bytes(lens.commitmentLeaf(att.as_tuple()))
    # and the signature eth-account makes recovers to the signer under that digest
    signer = system.oracle[0]
    assert signer_of(system.domain, att, signer.sign(system.domain, att)) == signer.address


def test_trade_and_withdraw_with_engine_attestations(system: System) -> None:
    from ape import accounts, chain, reverts

    alice, bob = accounts.test_accounts[1], accounts.test_accounts[2]
    _fund(system, alice, 20_000)
    _fund(system, bob, 20_000)
    ch, call_id = system.ch, system.ids[[n for n in system.ids if n.endswith("-3000-C")][0]]

    # bob offers to sell 10 calls at the engine's mark; alice takes them
    now = chain.blocks.head.timestamp
    market = system.market(now)
    from offchain.risk.book import Book, Portfolio
    from offchain.risk.scenarios import price_instruments

    book = Book.from_portfolios([Portfolio({system.registry[call_id]: 1.0})])
    mark = float(price_instruments(book.table, market, PARAMS).marks[0])
    price = int(round(mark, 6) * WAD)
    order = Order(bob.address, call_id, -10 * WAD, price, nonce=1, deadline=now + 600)
    maker_sig = _sign_order(bob, system, order)

    def post(account: str, delta: int) -> MarginAttestation:
        positions = _positions(system, account)
        new_size = positions.get(call_id, 0) + delta
        positions[call_id] = new_size
        state = next_state_hash(bytes(ch.stateHashOf(account)), call_id, new_size)
        return margin_attestation(account, state, positions, system.registry, market, PARAMS)

    maker_att, taker_att = post(bob.address, -10 * WAD), post(alice.address, 10 * WAD)
    ch.fillOrder(
        order.as_tuple(),
        maker_sig,
        10 * WAD,
        maker_att.as_tuple(),
        sign_bundle(system.oracle[:2], system.domain, maker_att),
        taker_att.as_tuple(),
        sign_bundle(system.oracle[1:], system.domain, taker_att),
        sender=alice,
    )
    assert ch.positionOf(alice.address, call_id) == 10 * WAD
    assert ch.positionOf(bob.address, call_id) == -10 * WAD
    assert ch.positionOf(alice.address, call_id) + ch.positionOf(bob.address, call_id) == 0

    # the state hash Python replays from the events equals the contract's
    logs = ch.PositionUpdated.range(system.deployment.deploy_block, chain.blocks.head.number + 1)
    updates = [(int(log.instrumentId), int(log.size)) for log in logs if log.account == alice.address]
    assert chain_state_hash(ZERO_HASH, updates) == bytes(ch.stateHashOf(alice.address))

    # withdrawal: equity after must stay ≥ attested IM
    now = chain.blocks.head.timestamp
    market = system.market(now)
    att = margin_attestation(
        alice.address,
        bytes(ch.stateHashOf(alice.address)),
        _positions(system, alice.address),
        system.registry,
        market,
        PARAMS,
    )
    sigs = sign_bundle(system.oracle, system.domain, att)
    equity = int(ch.cashOf(alice.address)) + att.value
    headroom_units = (equity - att.initial_margin) // 10**12  # token units (6 decimals)
    assert headroom_units > 0
    with reverts(ch.InsufficientEquity):
        ch.withdraw(headroom_units + 1, alice.address, att.as_tuple(), sigs, sender=alice)
    before = system.token.balanceOf(alice.address)
    ch.withdraw(headroom_units, alice.address, att.as_tuple(), sigs, sender=alice)
    assert system.token.balanceOf(alice.address) - before == headroom_units
    # custody reconciles to the wei: tokens == Σ cash + fees
    assert system.token.balanceOf(ch.address) * 10**12 == int(ch.totalCash()) + int(ch.protocolFees())


def test_bundle_from_an_outsider_is_refused(system: System) -> None:
    from ape import accounts, chain, reverts

    alice = accounts.test_accounts[1]
    _fund(system, alice, 1_000)
    # open a position so the withdrawal needs an attestation
    bob = accounts.test_accounts[2]
    _fund(system, bob, 1_000)
    perp = system.ids["ETH-PERP"]
    now = chain.blocks.head.timestamp
    order = Order(bob.address, perp, -(WAD // 10), 3000 * WAD, 1, now + 600)
    market = system.market(now)
    atts = []
    for acct, delta in ((bob.address, -(WAD // 10)), (alice.address, WAD // 10)):
        state = next_state_hash(bytes(system.ch.stateHashOf(acct)), perp, delta)
        atts.append(margin_attestation(acct, state, {perp: delta}, system.registry, market, PARAMS))
    system.ch.fillOrder(
        order.as_tuple(),
        _sign_order(bob, system, order),
        WAD // 10,
        atts[0].as_tuple(),
        sign_bundle(system.oracle, system.domain, atts[0]),
        atts[1].as_tuple(),
        sign_bundle(system.oracle, system.domain, atts[1]),
        sender=alice,
    )
    att = margin_attestation(
        alice.address,
        bytes(system.ch.stateHashOf(alice.address)),
        {perp: WAD // 10},
        system.registry,
        system.market(chain.blocks.head.timestamp),
        PARAMS,
    )
    outsiders = sorted([LocalSigner.random(), LocalSigner.random()], key=lambda s: int(s.address, 16))
    with reverts(system.ch.UnauthorizedSigner):
        system.ch.withdraw(1, alice.address, att.as_tuple(), sign_bundle(outsiders, system.domain, att), sender=alice)
    with reverts(system.ch.NotEnoughSignatures):
        system.ch.withdraw(
            1, alice.address, att.as_tuple(), sign_bundle(system.oracle[:1], system.domain, att), sender=alice
        )


def _sign_order(maker: Any, system: System, order: Order) -> bytes:
    from offchain.attest.eip712 import sign

    return sign(maker.private_key, system.domain, order)

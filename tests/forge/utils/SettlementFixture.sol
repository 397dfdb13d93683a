// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "./LiquidationFixture.sol";
import {InstrumentKind, SettlementPrice} from "../../../contracts/interfaces/IClearinghouse.sol";

/// @notice Settlement scenarios: carol (deposit 300) is the payer who cannot pay, alice and erin
///         (10,000 each) hold the other sides; the fund starts empty.
abstract contract SettlementFixture is LiquidationFixture {
    event log_named_int(string key, int256 val);

    bytes32 internal constant BTC = "BTC";
    uint256 internal constant ERIN_KEY = 0xE41;
    address internal erin;

    function setUpSettlement() internal {
        setUpLiquidation(3, 2);
        erin = vm.addr(ERIN_KEY);
        fund(alice, 10_000);
        fund(erin, 10_000);
        fund(carol, 300);
    }

    /// @dev An option on `underlying` of the fixture's expiry.
    function listOption(bytes32 underlying, InstrumentKind kind, uint256 strike) internal returns (uint256 id) {
        vm.prank(owner);
        id = ch.listInstrument(underlying, kind, strike, expiry);
    }

    /// @dev Posts the oracle's settlement price of `underlying` at the expiry.
    function post(bytes32 underlying, uint256 price) internal {
        SettlementPrice memory sp =
            SettlementPrice({underlying: underlying, expiry: expiry, price: price, snapshotTime: expiry});
        ch.postSettlementPrice(sp, oracleSignPrice(sp));
    }

    /// @dev Settles `who`'s position in `id` and returns what its cash gained.
    function gain(address who, uint256 id) internal returns (int256 got) {
        int256 before = ch.cashOf(who);
        engine.settle(who, ids1(id));
        got = ch.cashOf(who) - before;
        emit log_named_int("payout", got);
    }
}

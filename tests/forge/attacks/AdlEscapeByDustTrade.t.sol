// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BankruptcyFixture} from "../utils/BankruptcyFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice Attack (blocked): an ADL counterparty makes a 1-wei trade in front of the keeper's
///         deleverage, so its leaf goes stale, hoping to close at the mark without its haircut and
///         push that onto the next ranks. A stale member is skipped instead: it pays nothing and
///         takes nothing, the next ranks pay only their own shares, and what it would have taken
///         stays with the bankrupt account (flagged) for the next plan, which includes it again.
contract AdlEscapeByDustTradeTest is BankruptcyFixture {
    event log_named_int(string key, int256 val);

    function setUp() public {
        setUpBankruptcy(false);
    }

    function test_dustTradeInFrontOfAdlDoesNotShiftTheHaircut() public {
        flagAlice();
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        // carol front-runs with a 1-wei trade of the deep call (cost: ~1,000 wei of premium)
        int256 carolEquity = ch.cashOf(carol) + carolValue(); // 2,500: her fair (capped) share
        fill(order(carol, deepCallId, 1, 999e18, 3), carolKey, dave, 1, quote(carolValue(), 0, 0, 0));
        int256 carolCash = ch.cashOf(carol);
        int256 bobCash = ch.cashOf(bob);
        engine.deleverage(att, sigs, fills);
        assertEq(ch.cashOf(carol), carolCash, "carol skipped");
        assertEq(ch.positionOf(carol, perpId), -4e18, "still holding her short: still in the queue");
        assertEq(bobCash - ch.cashOf(bob), 6_000e18 + 5_949e18, "bob pays his own share, not carol's");
        assertTrue(ch.flagged(alice), "carol's part stays with alice, flagged");
        // the next plan (fresh leaves) charges carol her capped share
        (att, sigs, fills) = alicePlan();
        AdlFill[] memory carolOnly = new AdlFill[](1);
        carolOnly[0] = fills[0]; // bob has nothing left on the opposite side
        carolCash = ch.cashOf(carol);
        engine.deleverage(att, sigs, carolOnly);
        assertApproxEqAbs(
            uint256(carolCash - ch.cashOf(carol)), uint256(4_000e18 + carolEquity), 1e6, "carol: 4 x mark + her equity"
        );
    }
}

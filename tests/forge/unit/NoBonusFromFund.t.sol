// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {InstrumentKind, MarginAttestation, RiskConfig} from "../../../contracts/interfaces/IClearinghouse.sol";
import {LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice The fund pays deficits, never bonuses: one party controlling the victim, its
///         counterparty and the liquidator gains nothing from a liquidation. The party's wealth
///         is what its three accounts could take out at the mark, Σ max(0, cash + value) (a
///         bankrupt account is worth nothing to its owner, not less); across a liquidation it
///         may only fall, by the insurance fee. The fund pays exactly the deficit when the
///         victim's equity is ≤ 0, nothing when it is > 0, and the bonus never exceeds the equity.
abstract contract PartyFixture is LiquidationFixture {
    address[3] internal party;
    uint256 internal keeperPutValue; // the keeper's other holding, constant through the test

    function setUpParty(uint256 aliceDeposit) internal {
        setUpLiquidation(3, 2);
        fund(alice, aliceDeposit);
        fund(bob, 100_000);
        fund(carol, 100_000);
        fund(keeper, 100_000);
        seedFund(50_000);
        party = [alice, bob, keeper];
    }

    /// @dev Σ over the party of max(0, cash + perpetuals at `mark` + other holdings).
    function wealth(uint256 mark) internal view returns (int256 w) {
        for (uint256 i; i < 3; ++i) {
            address a = party[i];
            int256 e = ch.cashOf(a) + ch.positionOf(a, perpId) * int256(mark) / 1e18;
            if (a == keeper) e += int256(keeperPutValue);
            if (e > 0) w += e;
        }
    }

    function liquidateMeasured(address victim, int256 value, uint256 mm)
        internal
        returns (int256 equityBefore, uint256 fundOut, uint256 fundIn, int256 bonus)
    {
        equityBefore = ch.cashOf(victim) + value;
        uint256 fundBefore = fundContract.fundBalance();
        int256 keeperCash = ch.cashOf(keeper);
        uint256 f;
        (f,,) = engine.liquidationTerms(equityBefore, mm);
        liquidateOne(victim, value, mm, int256(keeperPutValue), keeperPutValue / 2);
        uint256 fundAfter = fundContract.fundBalance();
        if (fundAfter < fundBefore) fundOut = fundBefore - fundAfter;
        else fundIn = fundAfter - fundBefore;
        int256 sliceValue = f == 1e18 ? value : _floorMul(value, f);
        // the keeper paid sliceValue − bonus for the slice
        bonus = ch.cashOf(keeper) - keeperCash + sliceValue;
    }

    function _floorMul(int256 x, uint256 f) internal pure returns (int256) {
        if (x >= 0) return int256(uint256(x) * f / 1e18);
        return -int256((uint256(-x) * f + 1e18 - 1) / 1e18);
    }
}

contract NoBonusFromFundTest is PartyFixture {
    /// Guards: a −20.5% gap leaves the victim bankrupt; the fund pays the deficit and no bonus.
    function test_gapToBankruptcyFundPaysTheDeficitOnly() public {
        // alice's equity is exactly her IM (20% of 30,000) after the trade and its 15 fee
        setUpParty(6_015);
        aliceBuysTenPerpsFromBob();
        uint256 mark = 2_385e18; // −20.5%
        int256 value = int256(10 * mark);
        uint256 mm = 10 * mark * 16 / 100;
        int256 before = wealth(mark);
        (int256 equity, uint256 fundOut, uint256 fundIn, int256 bonus) = liquidateMeasured(alice, value, mm);
        assertEq(equity, -150e18, "bankrupt by 150");
        assertEq(fundOut, 150e18, "the fund paid exactly the deficit");
        assertEq(fundIn, 0, "no fee from a bankrupt account");
        assertEq(bonus, 0, "no bonus");
        assertEq(ch.cashOf(alice), 0, "victim at zero");
        assertLe(wealth(mark) - before, 0, "the party gained nothing from the fund");
    }

    /// Guards: a whole (dust) liquidation of small positive equity pays a bonus ≤ equity, fund untouched.
    function test_dustLiquidationBonusCappedAtEquity() public {
        setUpParty(13);
        // alice buys 0.02 perpetuals at 3,000 (IM 12): cash 13 − 60 − 0.03 = −47.03
        fill(order(bob, perpId, -0.02e18, 3_000e18, 1), bobKey, alice, 0.02e18, quote(-60e18, 12e18, 60e18, 12e18));
        uint256 mark = 2_376.5e18; // value 47.53: equity 0.5, MM 7.6 < the dust margin of 10
        int256 value = int256(0.02e18 * mark / 1e18);
        uint256 mm = uint256(value) * 16 / 100;
        (uint256 f, uint256 termsBonus,) = engine.liquidationTerms(ch.cashOf(alice) + value, mm);
        assertEq(f, 1e18, "whole");
        assertEq(termsBonus, 0.5e18, "bonus capped at the equity (10% of MM would be 0.76)");
        int256 before = wealth(mark);
        (int256 equity, uint256 fundOut,, int256 bonus) = liquidateMeasured(alice, value, mm);
        assertEq(equity, 0.5e18, "small positive equity");
        assertLe(bonus, equity, "bonus <= equity");
        assertEq(fundOut, 0, "the fund paid nothing");
        assertGe(ch.cashOf(alice), 0, "victim not below zero");
        assertLe(wealth(mark) - before, 0, "the party gained nothing from the fund");
    }
}

/// @notice The padded book on a slow slide: 15 one-wei legs and 10 perpetuals, position cap 16,
///         the keeper holding a put. Each time alice dips below MM the keeper liquidates the
///         smallest slice; the party never gains and the fund only collects fees.
contract SlowSlideTest is PartyFixture {
    function defaultConfig() internal pure override returns (RiskConfig memory c) {
        c = super.defaultConfig();
        c.maxPositions = 16;
    }

    /// Guards: dust padding + slow slide: each liquidation succeeds, bonus ≤ equity, fund never pays.
    function test_paddedBookOnASlowSlide() public {
        setUpParty(10_000);
        aliceBuysTenPerpsFromBob();
        uint256[] memory dust = new uint256[](15);
        vm.startPrank(owner);
        for (uint256 i; i < 15; ++i) {
            dust[i] = ch.listInstrument(ETH, InstrumentKind.Call, (3_100 + 100 * i) * 1e18, expiry);
        }
        vm.stopPrank();
        for (uint256 i; i < 15; ++i) {
            fill(
                order(bob, dust[i], -1, 100e18, 10 + i),
                bobKey,
                alice,
                1,
                quote(-30_000e18, 6_000e18, 30_000e18, 6_000e18)
            );
        }
        fill(order(carol, putId, -1e18, 200e18, 1), carolKey, keeper, 1e18, quote(-200e18, 100e18, 200e18, 100e18));
        keeperPutValue = 200e18;
        assertEq(ch.openInstruments(alice).length, 16, "alice at the cap");

        uint256 mark = 2_400e18;
        uint256 liquidations;
        for (uint256 step; step < 80 && ch.positionOf(alice, perpId) != 0; ++step) {
            mark = mark * 995 / 1000; // −0.5% a step
            vm.warp(block.timestamp + 30);
            int256 size = ch.positionOf(alice, perpId);
            int256 value = size * int256(mark) / 1e18;
            uint256 mm = uint256(value) * 16 / 100;
            if (ch.cashOf(alice) + value >= int256(mm)) continue;
            int256 before = wealth(mark);
            (int256 equity, uint256 fundOut,, int256 bonus) = liquidateMeasured(alice, value, mm);
            ++liquidations;
            assertGt(equity, 0, "caught before bankruptcy");
            assertLe(bonus, equity, "bonus <= equity");
            assertEq(fundOut, 0, "the fund paid nothing");
            assertLe(wealth(mark) - before, 0, "the party gained nothing");
        }
        assertGt(liquidations, 3, "the slide liquidated alice several times");
        assertEq(ch.openInstruments(keeper).length, 17, "the keeper took every dust leg, above the cap");
    }
}

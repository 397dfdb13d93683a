// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {WaterfallHandler} from "./WaterfallHandler.sol";
import {DevStablecoin} from "../../../contracts/periphery/DevStablecoin.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";

/// @notice Invariants of the loss waterfall under random trades, crashes, liquidations and ADL.
contract WaterfallInvariants is LiquidationFixture {
    WaterfallHandler internal handler;

    function setUp() public {
        setUpLiquidation(3, 2);
        SnapshotCommitments registry = new SnapshotCommitments(address(ch));
        vm.prank(owner);
        ch.bootstrapEngine(address(registry)); // before the first deposit seals the bootstrap
        uint256[] memory ids = new uint256[](3);
        ids[0] = perpId;
        ids[1] = callId;
        ids[2] = putId;
        handler = new WaterfallHandler(ch, fundContract, engine, usdc, keysSlice(0, 2), ids);
        usdc.transferOwnership(address(handler));
        vm.prank(address(handler));
        usdc.acceptOwnership();
        handler.useRegistry(registry);
        handler.setUpBalances();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](4);
        selectors[0] = WaterfallHandler.trade.selector;
        selectors[1] = WaterfallHandler.movePrice.selector;
        selectors[2] = WaterfallHandler.liquidate.selector;
        selectors[3] = WaterfallHandler.deleverage.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    function invariant_conservationOfFunds() public view {
        assertEq(
            int256(usdc.balanceOf(address(ch)) * 1e12),
            ch.totalCash() + int256(ch.protocolFees()) - ch.netSettlementPayouts(),
            "clearinghouse custody == cash + fees"
        );
        assertEq(
            usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund custody == fund balance"
        );
        assertEq(
            fundContract.fundBalance(), handler.ghostFundIn() - handler.ghostFundOut(), "fund == inflows - outflows"
        );
        int256 sum;
        for (uint256 i; i < handler.actorCount(); ++i) {
            sum += ch.cashOf(handler.actors(i));
        }
        assertEq(sum, ch.totalCash(), "sum of cash");
    }

    function invariant_positionsZeroSum() public view {
        for (uint256 j; j < handler.instrumentCount(); ++j) {
            int256 net;
            for (uint256 i; i < handler.actorCount(); ++i) {
                net += ch.positionOf(handler.actors(i), handler.instruments(j));
            }
            assertEq(net, 0, "positions sum to zero");
        }
    }

    /// The fund is a uint and can only be paid out through release(), capped at its balance;
    /// this checks the custody behind it never falls short.
    function invariant_fundNeverNegative() public view {
        assertGe(usdc.balanceOf(address(fundContract)) * 1e12, fundContract.fundBalance(), "fund backed by tokens");
    }

    function invariant_noHealthyAccountLiquidated() public view {
        assertFalse(handler.healthyLiquidated(), "a healthy account was liquidated");
    }

    function invariant_partialLiquidationRestoresTarget() public view {
        assertFalse(handler.targetMissed(), "a partial liquidation left the account below target");
    }

    function invariant_adlOnlyWhenFundCannotCover() public view {
        assertFalse(handler.adlWhileFundCouldCover(), "ADL ran while the fund could cover");
    }

    /// Every path of the handler that swallows reverts succeeded at least once in the run: one
    /// that always reverted would pass every invariant above unexercised.
    function afterInvariant() public view {
        assertGt(handler.trades(), 0, "no trade filled");
        assertGt(handler.liquidations() - handler.provenLiquidations(), 0, "no signed liquidation");
        assertGt(handler.provenLiquidations(), 0, "no proven liquidation");
        assertGt(handler.deleveragings(), 0, "no deleveraging");
    }

    /// The proven-liquidation path of the handler works (the campaign exercises it, not only reverts).
    function test_handlerLiquidatesWithProofs() public {
        handler.trade(0, 1, 0, 19e18, true); // actor 0 long ~20 perpetuals at the mark, 20,000 deposited
        for (uint256 i; i < 3; ++i) {
            handler.movePrice(0, 0); // −12% each time
        }
        handler.liquidate(4); // 4 % 3 == 1: proven; even: the weakest account
        assertEq(handler.provenLiquidations(), 1, "a liquidation proven against a posted root");
    }
}

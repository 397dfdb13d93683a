// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "../utils/ClearinghouseFixture.sol";
import {ClearinghouseHandler} from "./ClearinghouseHandler.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";

/// @notice Invariants of the ledger under random deposits, withdrawals, trades and price moves.
contract ClearinghouseInvariants is ClearinghouseFixture {
    ClearinghouseHandler internal handler;

    function setUp() public {
        setUpClearinghouse(6, 3, 2);
        uint256[] memory ids = new uint256[](3);
        ids[0] = perpId;
        ids[1] = callId;
        ids[2] = putId;
        handler = new ClearinghouseHandler(ch, usdc, keysSlice(0, 2), ids);
        SnapshotCommitments registry = new SnapshotCommitments(address(ch));
        vm.prank(owner);
        ch.bootstrapEngine(address(registry));
        handler.useRegistry(registry);
        usdc.transferOwnership(address(handler));
        vm.prank(address(handler));
        usdc.acceptOwnership();
        handler.setUpBalances();
        targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](6);
        selectors[0] = ClearinghouseHandler.deposit.selector;
        selectors[1] = ClearinghouseHandler.withdraw.selector;
        selectors[2] = ClearinghouseHandler.trade.selector;
        selectors[3] = ClearinghouseHandler.movePrice.selector;
        selectors[4] = ClearinghouseHandler.passTime.selector;
        selectors[5] = ClearinghouseHandler.withdrawWithProof.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    /// Tokens held = Σ cash + fees (− settlement payouts not yet matched; none here).
    function invariant_conservationOfFunds() public view {
        assertEq(
            int256(usdc.balanceOf(address(ch)) * 1e12),
            ch.totalCash() + int256(ch.protocolFees()) - ch.netSettlementPayouts(),
            "custody == cash + fees"
        );
        assertEq(
            ch.totalCash(),
            int256(handler.ghostDeposited()) - int256(handler.ghostWithdrawn()) - int256(handler.ghostFees()),
            "cash == deposits - withdrawals - fees"
        );
        assertEq(ch.protocolFees(), handler.ghostFees(), "fees");
    }

    /// Σ per-account cash equals the running total.
    function invariant_cashSumsToTotal() public view {
        int256 sum;
        for (uint256 i; i < handler.actorCount(); ++i) {
            sum += ch.cashOf(handler.actors(i));
        }
        assertEq(sum, ch.totalCash(), "sum of cash");
    }

    /// Every position has a counterparty.
    function invariant_positionsZeroSum() public view {
        for (uint256 j; j < handler.instrumentCount(); ++j) {
            int256 net;
            uint256 id = handler.instruments(j);
            for (uint256 i; i < handler.actorCount(); ++i) {
                net += ch.positionOf(handler.actors(i), id);
            }
            assertEq(net, 0, "positions sum to zero");
        }
    }

    /// No trade or withdrawal leaves the account that made it below IM.
    function invariant_noActionEndsBelowInitialMargin() public view {
        assertFalse(handler.imViolated(), "an action ended below IM");
    }

    /// The proof-withdrawal handler works (so the campaign exercises that path, not only reverts).
    function test_handlerWithdrawsWithAProof() public {
        handler.deposit(0, 1_000e6);
        handler.withdrawWithProof(0, 400e6);
        assertEq(handler.proofWithdrawals(), 1, "a withdrawal proven against a posted root");
        assertEq(usdc.balanceOf(handler.actors(0)) * 1e12, handler.ghostWithdrawn(), "paid out what the ghost records");
        assertGt(handler.ghostWithdrawn(), 0, "something paid out");
    }

    /// Every path of the handler that swallows reverts succeeded at least once in the run: one
    /// that always reverted would pass every invariant above unexercised.
    function afterInvariant() public view {
        assertGt(handler.signedWithdrawals(), 0, "no withdrawal against a signed attestation");
        assertGt(handler.proofWithdrawals(), 0, "no withdrawal against a proof");
        assertGt(handler.trades(), 0, "no trade filled");
    }
}

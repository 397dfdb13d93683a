// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "./LiquidationFixture.sol";
import {MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {
    AdlAttestation,
    AdlFill,
    ILiquidationEngine,
    LiquidationRequest
} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice The backstop's book: alice is long 10 ETH perpetuals at 3,000 (6 from bob, 4 from
///         carol); at a mark of 2,300 her equity (~2,985) is below an MM of 3,680 but positive —
///         an ordinary liquidation case — and above an MM of 2,900 (a lower vol): healthy.
abstract contract BackstopFixture is LiquidationFixture {
    uint256 internal constant MARK = 2_300e18;
    uint256 internal constant MM = 3_680e18; // 16% of 23,000
    uint256 internal constant HEALTHY_MM = 2_900e18;

    function setUp() public virtual {
        openAliceLong(1_000);
    }

    /// @dev Alice's attestation now at the mark, with maintenance margin `mm` (IM = 1.25 MM).
    function aliceAt(uint256 mm) internal view returns (MarginAttestation memory att, bytes memory sigs) {
        att = attestation(alice, int256(10 * MARK), mm * 5 / 4, mm);
        sigs = oracleSign(att);
    }

    /// @dev Anyone reports alice stalled with an attestation taken now.
    function report() internal {
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(MM);
        vm.prank(carol);
        engine.reportStall(alice, att, sigs);
    }

    /// @dev The oracle's backstop plan: alice's position against carol then bob, at the mark.
    function plan() internal view returns (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) {
        return alicePlan(MARK, carolThenBob());
    }

    /// @dev A keeper's liquidation of alice finds nothing to do: she is healthy at MM `mm`.
    function liquidationSkips(uint256 mm) internal {
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * MARK), mm);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectRevert(ILiquidationEngine.NothingLiquidated.selector);
        engine.liquidate(reqs, katt, ksigs);
    }

    /// @dev The backstop refuses to close alice (`due` is when it would have been due).
    function backstopRefused(uint256 due) internal {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = plan();
        vm.expectRevert(abi.encodeWithSelector(ILiquidationEngine.BackstopNotDue.selector, due));
        engine.deleverage(att, sigs, fills);
        assertEq(ch.positionOf(alice, perpId), 10e18, "the healthy account keeps its position");
    }
}

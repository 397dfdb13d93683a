// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {BankruptcyFixture} from "../utils/BankruptcyFixture.sol";
import {IClearinghouse, MarginAttestation, Order, RiskConfig} from "../../../contracts/interfaces/IClearinghouse.sol";
import {
    AdlAttestation,
    AdlFill,
    ILiquidationEngine,
    LiquidationRequest
} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice A new risk-model version executed by an outsider must not leave a block without usable
///         attestations: those of the previous version stay acceptable for maxSnapshotAge (120 s)
///         after the change, for every action, and are refused from then on.
/// @dev At ETH 1,000 (BankruptcyFixture): alice is bankrupt beyond the fund (flag, ADL); erin,
///      long 1 perpetual from 3,000 on a deposit of 2,100, is below MM (liquidation); bob
///      withdraws; the keeper buys a perpetual from dave (trade).
contract ParamsCutoverTest is BankruptcyFixture {
    address internal erin;
    uint64 internal changedAt;

    function setUp() public {
        setUpBankruptcy(false);
        erin = vm.addr(0xE41);
        fund(erin, 2_100);
        fill(order(bob, perpId, -1e18, 3_000e18, 9), bobKey, erin, 1e18, quote(-21_000e18, 4_200e18, 3_000e18, 600e18));
        assertFalse(ch.acceptsParamsVersion(2), "v2 not yet");
        RiskConfig memory c = defaultConfig();
        c.paramsVersion = 2;
        governConfig(c, keccak256("params-v2")); // executed by an outsider
        changedAt = uint64(block.timestamp);
        assertEq(uint256(ch.paramsChangedAt()), changedAt, "recorded");
        assertEq(uint256(ch.previousParamsVersion()), 1, "previous");
    }

    // ------------------------------------------------------------------ each action, signed now under `attestVersion`

    function doWithdraw() internal {
        MarginAttestation memory att = attestation(bob, bobValue(), 1_200e18, 960e18);
        bytes memory sigs = oracleSign(att);
        vm.prank(bob);
        ch.withdraw(1_000e6, bob, att, sigs);
    }

    function doTrade() internal {
        Order memory o = order(dave, perpId, -1e18, 1_000e18, 100);
        (MarginAttestation memory ma, MarginAttestation memory ta) =
            postTradeAttestations(o, keeper, 1e18, quote(-1_000e18, 8_000e18, 1_000e18, 200e18));
        bytes memory makerSig = signOrder(o, daveKey);
        bytes memory maSigs = oracleSign(ma);
        bytes memory taSigs = oracleSign(ta);
        vm.prank(keeper);
        ch.fillOrder(o, makerSig, 1e18, ma, maSigs, ta, taSigs);
    }

    function doLiquidate() internal {
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(erin, 1_000e18, 160e18); // equity 98.5 < MM 160
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
    }

    function doFlag() internal {
        flagAlice();
    }

    function doAdl() internal {
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = alicePlan();
        engine.deleverage(att, sigs, fills);
    }

    function versionError(uint32 attested) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IClearinghouse.WrongParamsVersion.selector, uint32(2), attested);
    }

    /// Guards: for maxSnapshotAge after a change the previous version passes for every action.
    function test_previousVersionAcceptedThroughTheGraceWindow() public {
        vm.warp(changedAt + 120); // the last second of the window
        assertTrue(ch.acceptsParamsVersion(1), "v1 still accepted");
        assertTrue(ch.acceptsParamsVersion(2), "v2 accepted");
        assertFalse(ch.acceptsParamsVersion(3), "v3 not");
        attestVersion = 1;
        doWithdraw();
        doTrade();
        doLiquidate();
        doFlag();
        doAdl();
        assertEq(ch.positionOf(alice, perpId), 0, "deleveraged under v1");
        assertLt(ch.positionOf(erin, perpId), 1e18, "liquidated under v1");
        assertEq(ch.positionOf(keeper, perpId) > 0, true, "traded under v1");
    }

    /// Guards: accepted at maxSnapshotAge after the change, refused one second later, for every action.
    function test_previousVersionRefusedAfterTheWindow() public {
        vm.warp(changedAt + 120);
        attestVersion = 1;
        doWithdraw(); // still inside the window
        vm.warp(changedAt + 121);
        assertFalse(ch.acceptsParamsVersion(1), "v1 retired");
        uint256 snap = vm.snapshotState();
        vm.expectRevert(versionError(1));
        this.tryWithdraw();
        vm.expectRevert(versionError(1));
        this.tryTrade();
        vm.expectRevert(versionError(1));
        this.tryLiquidate();
        vm.expectRevert(versionError(1));
        this.tryFlag();
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongParamsVersion.selector, uint32(2), uint32(1)));
        this.tryAdl();
        vm.revertToState(snap);
        // the new version works for all of them
        attestVersion = 2;
        doWithdraw();
        doTrade();
        doLiquidate();
        doFlag();
        doAdl();
        assertEq(ch.positionOf(alice, perpId), 0, "deleveraged under v2");
        // and a later change that keeps the version does not reopen a window for v1
        RiskConfig memory c = defaultConfig();
        c.paramsVersion = 2;
        c.maxPositions = 4;
        governConfig(c, keccak256("params-v2"));
        assertFalse(ch.acceptsParamsVersion(1), "v1 stays retired");
    }

    /// Guards: the window belongs to the version just replaced: two changes retire the oldest.
    function test_secondChangeRetiresTheOldestAtOnce() public {
        RiskConfig memory c = defaultConfig();
        c.paramsVersion = 3;
        governConfig(c, keccak256("params-v3"));
        assertFalse(ch.acceptsParamsVersion(1), "v1 retired by the second change");
        assertTrue(ch.acceptsParamsVersion(2), "v2 in its window");
        attestVersion = 1;
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongParamsVersion.selector, uint32(3), uint32(1)));
        this.tryWithdraw();
        attestVersion = 2;
        doWithdraw();
    }

    // external wrappers so that expectRevert sees one call each
    function tryWithdraw() external {
        doWithdraw();
    }

    function tryTrade() external {
        doTrade();
    }

    function tryLiquidate() external {
        doLiquidate();
    }

    function tryFlag() external {
        doFlag();
    }

    function tryAdl() external {
        doAdl();
    }
}

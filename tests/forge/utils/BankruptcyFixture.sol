// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "./LiquidationFixture.sol";
import {InstrumentKind, MarginAttestation} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";

/// @notice A crash that leaves alice bankrupt beyond a small fund, against counterparties whose
///         own books lost in the same crash.
/// @dev At ETH 3,000 alice buys 10 perpetuals: 6 from bob, 4 from carol (alice pays 15 in fees:
///      cash −20,015). Carol is net long: she also bought 6 deep in-the-money calls (strike 1,
///      worth ETH − 1) from dave at 2,999. At ETH 1,000 (the oracle's model: perpetual = mark,
///      deep call = mark − 1, MM 16% / IM 20% of notional):
///        alice  value 10,000, equity −10,015 (fund 100: a haircut of 9,915 for the queue)
///        carol  cash 506, value −4,000 + 5,994 = 1,994: equity 2,500 on 9,994 of notional (4×)
///        bob    rich: cash 118,000, value −6,000: equity 112,000
///               levered (7 deep calls, deposit 5,000): cash 2,007, value 993: equity 3,000
abstract contract BankruptcyFixture is LiquidationFixture {
    uint256 internal constant MARK = 1_000e18;
    uint256 internal constant ALICE_MM = 1_600e18; // 16% of 10 × 1,000
    uint256 internal daveKey = 0xDA7E;
    address internal dave;
    uint256 internal deepCallId;

    function setUpBankruptcy(bool bobLevered) internal {
        setUpLiquidation(3, 2);
        dave = vm.addr(daveKey);
        vm.label(dave, "dave");
        vm.prank(owner);
        deepCallId = ch.listInstrument(ETH, InstrumentKind.Call, 1e18, expiry);
        fund(alice, 10_000);
        fund(carol, 6_500);
        fund(bob, bobLevered ? 5_000 : 100_000);
        fund(dave, 1_000_000);
        fund(keeper, 100_000);
        seedFund(100);
        // post-trade attestations at ETH 3,000; IMs are the oracle's portfolio margin (hedged books
        // need little: 20% of the net delta notional)
        fill(
            order(bob, perpId, -6e18, 3_000e18, 1),
            bobKey,
            alice,
            6e18,
            quote(-18_000e18, 3_600e18, 18_000e18, 3_600e18)
        );
        fill(
            order(carol, perpId, -4e18, 3_000e18, 1),
            carolKey,
            alice,
            4e18,
            quote(-12_000e18, 2_400e18, 30_000e18, 6_000e18)
        );
        fill(
            order(carol, deepCallId, 6e18, 2_999e18, 2),
            carolKey,
            dave,
            6e18,
            quote(5_994e18, 1_200e18, -17_994e18, 3_600e18)
        );
        if (bobLevered) {
            fill(
                order(bob, deepCallId, 7e18, 2_999e18, 2),
                bobKey,
                dave,
                7e18,
                quote(2_993e18, 600e18, -38_987e18, 7_800e18)
            );
        }
    }

    // ------------------------------------------------------------------ the oracle at ETH = mark

    function aliceValue(uint256 mark) internal pure returns (int256) {
        return int256(10 * mark);
    }

    /// @dev The oracle's attestation of alice's current portfolio at ETH = mark.
    function aliceAt(uint256 mark) internal view returns (MarginAttestation memory att, bytes memory sigs) {
        uint256 notional = 10 * mark;
        att = attestation(alice, int256(notional), notional / 5, notional * 16 / 100);
        sigs = oracleSign(att);
    }

    /// @dev Portfolio values at ETH 1,000 that the queue leaves commit to.
    function carolValue() internal view returns (int256) {
        return ch.positionOf(carol, perpId) * int256(MARK) / 1e18 + ch.positionOf(carol, deepCallId)
            * int256(MARK - 1e18) / 1e18;
    }

    function bobValue() internal view returns (int256) {
        return
            ch.positionOf(bob, perpId) * int256(MARK) / 1e18 + ch.positionOf(bob, deepCallId) * int256(MARK - 1e18)
                / 1e18;
    }

    function flagAlice() internal {
        (MarginAttestation memory att, bytes memory sigs) = aliceAt(MARK);
        engine.flagBankruptcy(alice, att, sigs);
    }

    /// @dev The oracle's ADL plan for alice at ETH 1,000: carol ranked first, then bob, each leaf
    ///      committing to the member's current state hash and value at the marks.
    function alicePlan() internal view returns (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) {
        uint256[] memory ids = new uint256[](1);
        ids[0] = perpId;
        uint256[] memory marks = new uint256[](1);
        marks[0] = MARK;
        bytes32[] memory roots = new bytes32[](1);
        address[] memory ranked = new address[](2);
        ranked[0] = carol;
        ranked[1] = bob;
        int256[] memory values = new int256[](2);
        values[0] = carolValue();
        values[1] = bobValue();
        (roots[0], fills) = queueWithValues(0, perpId, ranked, values);
        (att, sigs) = adlAttestation(alice, ids, marks, roots);
    }

    function liquidateAliceWhole() internal {
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, aliceValue(MARK), ALICE_MM);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
    }
}

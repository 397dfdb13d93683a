// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {LiquidationFixture} from "../utils/LiquidationFixture.sol";
import {
    IClearinghouse,
    InstrumentKind,
    MarginAttestation,
    RiskConfig
} from "../../../contracts/interfaces/IClearinghouse.sol";
import {ILiquidationEngine, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {Digests} from "../utils/Digests.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";

/// @notice Who can take a liquidation. Alice is long 10 perpetuals bought at 3,000 with a deposit
///         of 10,000 (cash −20,015); the oracle's model: value = 10 × mark, MM 16% / IM 20% of it.
///         At 2,300 she is below MM (equity 2,985 < 3,680) and liquidated in part.
contract LiquidatorAttestationTest is LiquidationFixture {
    using Digests for Clearinghouse;

    uint256 internal constant DIP = 2_300e18;

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(carol, 10_000);
        fund(keeper, 100_000);
        seedFund(50_000);
        aliceBuysTenPerpsFromBob();
        // the keeper already holds one put (its book is not empty)
        fill(order(bob, putId, -1e18, 200e18, 2), bobKey, keeper, 1e18, quote(-30_200e18, 6_000e18, 200e18, 100e18));
    }

    function deposit(address from, address to, uint256 tokenAmount) internal {
        usdc.mint(from, tokenAmount);
        vm.startPrank(from);
        usdc.approve(address(ch), tokenAmount);
        ch.deposit(to, tokenAmount);
        vm.stopPrank();
    }

    function dipRequest() internal view returns (LiquidationRequest[] memory reqs) {
        reqs = new LiquidationRequest[](1);
        reqs[0] = request(alice, int256(10 * DIP), 10 * DIP * 16 / 100);
    }

    /// Guards: a 1-unit deposit into the victim between signing and inclusion does not sink it.
    function test_oneUnitDepositIntoTheVictimDoesNotSinkTheLiquidation() public {
        LiquidationRequest[] memory reqs = dipRequest();
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(200e18, 100e18);
        int256 equityBefore = ch.cashOf(alice) + reqs[0].att.value;
        (uint256 fSigned,,) = engine.liquidationTerms(equityBefore, reqs[0].att.maintenanceMargin);
        deposit(carol, alice, 1); // front-run: one token unit (1e12 wei of WAD) into alice
        (uint256 f,,) = engine.liquidationTerms(equityBefore + 1e12, reqs[0].att.maintenanceMargin);
        assertTrue(f != fSigned, "the deposit moved the fraction");
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        assertEq(ch.positionOf(keeper, perpId), sliceOf(10e18, f), "liquidated at the new fraction");
        assertEq(ch.positionOf(alice, perpId) + ch.positionOf(keeper, perpId), 10e18, "slice moved");
    }

    /// Guards: a 1-unit deposit into the liquidator between signing and inclusion does not sink it.
    function test_oneUnitDepositIntoTheLiquidatorDoesNotSinkTheLiquidation() public {
        LiquidationRequest[] memory reqs = dipRequest();
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(200e18, 100e18);
        deposit(carol, keeper, 1);
        deposit(carol, alice, 1);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        assertGt(ch.positionOf(keeper, perpId), 0, "liquidated");
    }

    /// Guards: equity_before + Σ bonus must cover IM_before + Σ ceil(fraction × victim IM), to the wei.
    function test_liquidatorRequirementIsImBeforePlusSliceIms() public {
        fill(
            order(bob, perpId, -10e18, 3_000e18, 3),
            bobKey,
            carol,
            10e18,
            quote(-60_000e18, 12_000e18, 30_000e18, 6_000e18)
        );
        LiquidationRequest[] memory reqs = new LiquidationRequest[](2);
        reqs[0] = request(alice, int256(10 * DIP), 3_680e18);
        reqs[1] = request(carol, int256(10 * DIP), 3_680e18);
        uint256 requirement = 100e18; // the keeper's IM before
        uint256 bonuses;
        for (uint256 i; i < 2; ++i) {
            int256 e = ch.cashOf(reqs[i].account) + reqs[i].att.value;
            (uint256 f, uint256 bonus,) = engine.liquidationTerms(e, reqs[i].att.maintenanceMargin);
            requirement += (reqs[i].att.initialMargin * f + 1e18 - 1) / 1e18;
            bonuses += bonus;
        }
        // the oracle's value for the keeper's book that makes its equity exactly enough
        int256 exact = int256(requirement) - int256(bonuses) - ch.cashOf(keeper);
        (MarginAttestation memory short_, bytes memory shortSigs) = keeperNow(exact - 1, 100e18);
        vm.prank(keeper);
        vm.expectRevert(
            abi.encodeWithSelector(
                ILiquidationEngine.LiquidatorBelowInitialMargin.selector, int256(requirement) - 1, requirement
            )
        );
        engine.liquidate(reqs, short_, shortSigs);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(exact, 100e18);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        assertGt(ch.positionOf(keeper, perpId), 0, "both liquidated");
        assertLt(ch.positionOf(carol, perpId), 10e18, "carol too");
    }

    /// Guards: the liquidator's attestation is of its portfolio before the liquidation.
    function test_liquidatorAttestationIsOfItsStateBefore() public {
        LiquidationRequest[] memory reqs = dipRequest();
        (MarginAttestation memory katt,) = keeperNow(200e18, 100e18);
        (uint256 f,,) = engine.liquidationTerms(ch.cashOf(alice) + reqs[0].att.value, reqs[0].att.maintenanceMargin);
        // an attestation of the state after the slice arrives is refused
        katt.stateHash = ch.nextStateHash(keeper, perpId, sliceOf(10e18, f));
        bytes memory sigs = oracleSign(katt);
        bytes32 current = ch.stateHashOf(keeper);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.WrongPortfolioState.selector, current, katt.stateHash));
        engine.liquidate(reqs, katt, sigs);
    }
}

/// @notice Dust padding: a book padded with one-wei legs up to the position cap (16 here), taken
///         by a keeper that already holds another instrument, so that it receives more positions
///         than the cap allows a trade to open.
contract DustPaddingTest is LiquidationFixture {
    uint256[] internal dustIds;

    function defaultConfig() internal pure override returns (RiskConfig memory c) {
        c = super.defaultConfig();
        c.maxPositions = 16;
    }

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(carol, 100_000);
        fund(keeper, 100_000);
        seedFund(50_000);
        aliceBuysTenPerpsFromBob();
        vm.startPrank(owner);
        for (uint256 i; i < 15; ++i) {
            dustIds.push(ch.listInstrument(ETH, InstrumentKind.Call, (3_100 + 100 * i) * 1e18, expiry));
        }
        vm.stopPrank();
        for (uint256 i; i < 15; ++i) {
            fill(
                order(bob, dustIds[i], -1, 100e18, 10 + i),
                bobKey,
                alice,
                1,
                quote(-30_000e18, 6_000e18, 30_000e18, 6_000e18)
            );
        }
        // the keeper holds another instrument, bought from carol
        fill(order(carol, putId, -1e18, 200e18, 1), carolKey, keeper, 1e18, quote(-200e18, 100e18, 200e18, 100e18));
        assertEq(ch.openInstruments(alice).length, 16, "alice at the cap");
    }

    function liquidateAliceAt(uint256 mark) internal {
        liquidateOne(alice, int256(10 * mark), 10 * mark * 16 / 100, 200e18, 100e18);
    }

    /// Guards: a padded book below MM is liquidated by a keeper that ends above the cap.
    function test_paddedBookBelowMmLiquidatedByAKeeperHoldingAnotherInstrument() public {
        liquidateAliceAt(2_300e18);
        assertEq(ch.openInstruments(keeper).length, 17, "keeper above the cap of 16 through receipts");
        for (uint256 i; i < 15; ++i) {
            assertEq(ch.positionOf(keeper, dustIds[i]), 1, "dust leg taken whole");
        }
        assertGt(ch.positionOf(alice, perpId), 0, "alice's real position only in part");
    }

    /// Guards: a padded bankrupt book is liquidated whole through the fund by the same keeper.
    function test_paddedBankruptBookLiquidatedWhole() public {
        uint256 fundBefore = fundContract.fundBalance();
        // equity −1,015 (and the 15 dust purchases' few wei)
        uint256 deficit = uint256(-(ch.cashOf(alice) + 19_000e18));
        liquidateAliceAt(1_900e18);
        assertEq(ch.openInstruments(alice).length, 0, "taken whole");
        assertEq(ch.openInstruments(keeper).length, 17, "keeper above the cap");
        uint256 paid = fundBefore - fundContract.fundBalance();
        assertEq(paid, (deficit + 1e12 - 1) / 1e12 * 1e12, "the fund paid the deficit, in whole token units");
        assertEq(ch.cashOf(alice), int256(paid - deficit), "deficit covered");
    }

    /// Guards: above the cap through receipts, a trade opening a new leg still reverts; reducing works.
    function test_aboveTheCapNoNewLegButReducingWorks() public {
        liquidateAliceAt(2_300e18);
        expectFillRevert(
            order(carol, callId, -1e18, 100e18, 2),
            carolKey,
            keeper,
            1e18,
            quote(0, 0, 0, 0),
            abi.encodeWithSelector(IClearinghouse.TooManyPositions.selector, 16)
        );
        // the keeper sells a dust leg back to bob: it closes, and the keeper is at the cap again
        fill(order(bob, dustIds[0], 1, 100e18, 100), bobKey, keeper, 1, quote(0, 0, 0, 0));
        assertEq(ch.openInstruments(keeper).length, 16, "reduced");
    }
}

/// @notice Receipts are bounded by the 64-position storage bound, not by the cap (32 here).
contract ReceiptBoundTest is LiquidationFixture {
    function defaultConfig() internal pure override returns (RiskConfig memory c) {
        c = super.defaultConfig();
        c.maxPositions = 32;
    }

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(keeper, 100_000);
        seedFund(50_000);
    }

    /// @dev `victim` buys 1e15 contracts of each of `n` new perpetuals from `seller` (deposit 1,000).
    function paddedVictim(uint256 victimKey, uint256 sellerKey, uint256 n, uint256 tag) internal returns (address v) {
        v = vm.addr(victimKey);
        address seller = vm.addr(sellerKey);
        fund(v, 1_000);
        fund(seller, 1_000);
        for (uint256 i; i < n; ++i) {
            vm.prank(owner);
            uint256 id = ch.listInstrument(bytes32(tag * 1_000 + i), InstrumentKind.Perpetual, 0, 0);
            fill(order(seller, id, -1e15, 1e18, i), sellerKey, v, 1e15, quote(0, 0, 0, 0));
        }
    }

    /// Guards: an empty-book liquidator takes receipts up to 64 positions and no further.
    function test_receiptsUpTo64ThenTooManyPositions() public {
        address v1 = paddedVictim(0xA1, 0xB1, 32, 1);
        address v2 = paddedVictim(0xA2, 0xB2, 32, 2);
        LiquidationRequest[] memory reqs = new LiquidationRequest[](2);
        reqs[0] = request(v1, 0, 2_000e18); // equity ≈ 1,000 < MM 2,000
        reqs[1] = request(v2, 0, 2_000e18);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
        assertEq(ch.openInstruments(keeper).length, 64, "64 positions through receipts");
        address v3 = paddedVictim(0xA3, 0xB3, 1, 3);
        LiquidationRequest[] memory more = new LiquidationRequest[](1);
        more[0] = request(v3, 0, 2_000e18);
        (katt, ksigs) = keeperNow(0, 0);
        vm.prank(keeper);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.TooManyPositions.selector, 64));
        engine.liquidate(more, katt, ksigs);
    }
}

/// @notice Governance lowering maxPositions (8 → 2) never strands an account holding more
///         instruments than the new cap: it stays liquidatable and can still reduce.
contract LoweredCapTest is LiquidationFixture {
    uint256[] internal ids;
    uint256[] internal keeperIds;

    function setUp() public {
        setUpLiquidation(3, 2);
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(carol, 100_000);
        fund(keeper, 100_000);
        seedFund(50_000);
        ids.push(perpId);
        ids.push(callId);
        ids.push(putId);
        vm.startPrank(owner);
        for (uint256 i; i < 5; ++i) {
            ids.push(ch.listInstrument(ETH, InstrumentKind.Call, (3_100 + 100 * i) * 1e18, expiry));
        }
        for (uint256 i; i < 2; ++i) {
            keeperIds.push(ch.listInstrument(ETH, InstrumentKind.Put, (2_000 + 100 * i) * 1e18, expiry));
        }
        vm.stopPrank();
        aliceBuysTenPerpsFromBob();
        for (uint256 i = 1; i < 8; ++i) {
            fill(
                order(bob, ids[i], -0.1e18, 10e18, 10 + i),
                bobKey,
                alice,
                0.1e18,
                quote(-30_000e18, 6_000e18, 30_000e18, 6_000e18)
            );
        }
        assertEq(ch.openInstruments(alice).length, 8, "alice at the cap of 8");
        RiskConfig memory c = defaultConfig();
        c.maxPositions = 2;
        governConfig(c, keccak256("params-v1"));
        assertEq(uint256(ch.riskConfig().maxPositions), 2, "cap lowered");
    }

    function liquidateAliceAt(uint256 mark) internal {
        liquidateOne(alice, int256(10 * mark), 10 * mark * 16 / 100, 0, 0);
    }

    /// Guards: an empty-book liquidator takes all 8 positions under a cap of 2.
    function test_emptyBookLiquidatorTakesAnAccountAboveTheLoweredCap() public {
        liquidateAliceAt(2_300e18);
        assertEq(ch.openInstruments(keeper).length, 8, "8 receipts under a cap of 2");
    }

    /// Guards: a liquidator already holding other instruments takes it too.
    function test_liquidatorHoldingOtherInstrumentsTakesIt() public {
        // two puts bought after the cap was lowered, within it
        fill(order(carol, keeperIds[0], -1e18, 50e18, 1), carolKey, keeper, 1e18, quote(0, 0, 0, 0));
        fill(order(carol, keeperIds[1], -1e18, 50e18, 2), carolKey, keeper, 1e18, quote(0, 0, 0, 0));
        liquidateAliceAt(1_900e18); // bankrupt: whole, through the fund
        assertEq(ch.openInstruments(keeper).length, 10, "2 of its own + 8 received");
        assertEq(ch.openInstruments(alice).length, 0, "alice taken whole");
    }

    /// Guards: above a lowered cap the account can reduce, not open, and stays liquidatable.
    function test_accountAboveTheCapCanReduceButNotOpen() public {
        // alice sells 2 perpetuals back to bob and closes one call
        fill(order(bob, perpId, 2e18, 3_000e18, 50), bobKey, alice, 2e18, quote(0, 0, 24_000e18, 4_800e18));
        fill(order(bob, ids[1], 0.1e18, 10e18, 51), bobKey, alice, 0.1e18, quote(0, 0, 24_000e18, 4_800e18));
        assertEq(ch.positionOf(alice, perpId), 8e18, "reduced");
        assertEq(ch.openInstruments(alice).length, 7, "closed one");
        expectFillRevert(
            order(carol, keeperIds[0], -1e18, 50e18, 52),
            carolKey,
            alice,
            1e18,
            quote(0, 0, 0, 0),
            abi.encodeWithSelector(IClearinghouse.TooManyPositions.selector, 2)
        );
        // still 7 positions over a cap of 2: the keeper takes them at the next dip
        liquidateOne(alice, 8 * 1_900e18, 8 * 1_900e18 * 16 / 100, 0, 0);
        assertEq(ch.openInstruments(keeper).length, 7, "liquidated above the cap");
    }
}

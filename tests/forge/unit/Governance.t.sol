// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "../utils/ClearinghouseFixture.sol";
import {IClearinghouse, RiskConfig} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../../../contracts/interfaces/IClearinghouseEngineHooks.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";

contract GovernanceTest is ClearinghouseFixture {
    function setUp() public {
        setUpClearinghouse(6, 3, 2);
    }

    function test_riskConfigThroughTimelock() public {
        RiskConfig memory c = defaultConfig();
        c.paramsVersion = 2;
        c.maxPositions = 16;
        vm.prank(owner);
        ch.scheduleRiskConfig(c, keccak256("params-v2"));
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.TimelockNotElapsed.selector, block.timestamp + TIMELOCK));
        ch.executeRiskConfig();
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeRiskConfig(); // anyone may execute
        assertEq(uint256(ch.riskConfig().paramsVersion), 2, "version");
        assertEq(uint256(ch.riskConfig().maxPositions), 16, "cap");
        assertEq(ch.paramsHash(), keccak256("params-v2"), "hash");
        vm.expectRevert(IClearinghouse.NothingScheduled.selector);
        ch.executeRiskConfig();
    }

    function test_onlyOwnerSchedules() public {
        RiskConfig memory c = defaultConfig();
        vm.prank(guardian);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, guardian));
        ch.scheduleRiskConfig(c, bytes32(0));
    }

    function test_cancelScheduled() public {
        vm.startPrank(owner);
        ch.scheduleRiskConfig(defaultConfig(), bytes32(0));
        ch.cancelScheduled("config");
        vm.stopPrank();
        vm.warp(block.timestamp + TIMELOCK);
        vm.expectRevert(IClearinghouse.NothingScheduled.selector);
        ch.executeRiskConfig();
    }

    function _expectBound(RiskConfig memory c, bytes32 name) internal {
        vm.prank(owner);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.ParameterOutOfBounds.selector, name));
        ch.scheduleRiskConfig(c, bytes32(0));
    }

    function test_everyParameterIsBounded() public {
        RiskConfig memory c;
        c = defaultConfig();
        c.paramsVersion = 0;
        _expectBound(c, "paramsVersion");
        c = defaultConfig();
        c.maxSnapshotAge = 4;
        _expectBound(c, "maxSnapshotAge");
        c = defaultConfig();
        c.maxSnapshotAge = 3601;
        _expectBound(c, "maxSnapshotAge");
        c = defaultConfig();
        c.snapshotTolerance = 601;
        c.maxSnapshotAge = 3600;
        _expectBound(c, "snapshotTolerance");
        c = defaultConfig();
        c.snapshotTolerance = 121;
        _expectBound(c, "snapshotTolerance");
        c = defaultConfig();
        c.maxPositions = 0;
        _expectBound(c, "maxPositions");
        c = defaultConfig();
        c.maxPositions = 33;
        _expectBound(c, "maxPositions");
        c = defaultConfig();
        c.takerFee = 0.01e18 + 1;
        _expectBound(c, "takerFee");
        c = defaultConfig();
        c.liquidationBuffer = 0.5e18 + 1;
        _expectBound(c, "liquidationBuffer");
        c = defaultConfig();
        c.liquidatorBonus = 0.5e18 + 1;
        _expectBound(c, "liquidatorBonus");
        c = defaultConfig();
        c.insuranceFee = 0.5e18 + 1;
        _expectBound(c, "insuranceFee");
        c = defaultConfig();
        c.liquidationBuffer = 0;
        c.liquidatorBonus = 0.3e18;
        c.insuranceFee = 0.3e18;
        _expectBound(c, "liquidatorBonus+insuranceFee");
        c = defaultConfig();
        c.dustMargin = 1e24 + 1;
        _expectBound(c, "dustMargin");
    }

    function testFuzz_maxPositionsBound(uint8 cap) public {
        RiskConfig memory c = defaultConfig();
        c.maxPositions = cap;
        vm.prank(owner);
        if (cap == 0 || cap > 32) vm.expectRevert();
        ch.scheduleRiskConfig(c, bytes32(0));
    }

    function test_signerSetValidation() public {
        address[] memory s = new address[](2);
        s[0] = address(2);
        s[1] = address(1); // not ascending
        vm.startPrank(owner);
        vm.expectRevert(IClearinghouse.InvalidSignerSet.selector);
        ch.scheduleSignerSet(s, 1);
        s[0] = address(1);
        s[1] = address(2);
        vm.expectRevert(IClearinghouse.InvalidSignerSet.selector);
        ch.scheduleSignerSet(s, 3); // threshold above n
        vm.expectRevert(IClearinghouse.InvalidSignerSet.selector);
        ch.scheduleSignerSet(s, 0);
        address[] memory tooMany = new address[](17);
        for (uint256 i; i < 17; ++i) {
            tooMany[i] = address(uint160(i + 1));
        }
        vm.expectRevert(IClearinghouse.InvalidSignerSet.selector);
        ch.scheduleSignerSet(tooMany, 9);
        s[0] = address(0);
        vm.expectRevert(IClearinghouse.InvalidSignerSet.selector);
        ch.scheduleSignerSet(s, 1);
        vm.stopPrank();
    }

    function test_signerSetRotationBumpsEpoch() public {
        address[] memory s = new address[](1);
        s[0] = address(0x1234);
        vm.prank(owner);
        ch.scheduleSignerSet(s, 1);
        vm.warp(block.timestamp + TIMELOCK);
        uint64 epoch = ch.signerEpoch();
        ch.executeSignerSet();
        assertEq(uint256(ch.signerEpoch()), uint256(epoch) + 1, "epoch");
        assertTrue(ch.isSigner(address(0x1234)), "new signer");
        assertFalse(ch.isSigner(vm.addr(oracleKeys[0])), "old signer gone");
        assertEq(uint256(ch.signerThreshold()), 1, "threshold");
    }

    function test_engineThroughTimelock() public {
        vm.prank(owner);
        ch.scheduleEngine(address(0xE), true);
        vm.expectRevert(IClearinghouseEngineHooks.NotEngine.selector);
        vm.prank(address(0xE));
        ch.engineMoveCash(alice, bob, 1);
        vm.warp(block.timestamp + TIMELOCK);
        ch.executeEngine(address(0xE));
        assertTrue(ch.isEngine(address(0xE)), "enabled");
    }

    function test_twoStepOwnership() public {
        vm.prank(owner);
        ch.transferOwnership(alice);
        assertEq(ch.owner(), owner, "not yet");
        vm.prank(alice);
        ch.acceptOwnership();
        assertEq(ch.owner(), alice, "accepted");
    }

    function test_timelockDelayBounded() public {
        address[] memory s = new address[](1);
        s[0] = address(1);
        RiskConfig memory c = defaultConfig();
        IERC20 token = IERC20(address(usdc));
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.ParameterOutOfBounds.selector, bytes32("timelockDelay")));
        new Clearinghouse(token, owner, owner, 59, c, bytes32(0), s, 1);
        vm.expectRevert(abi.encodeWithSelector(IClearinghouse.ParameterOutOfBounds.selector, bytes32("timelockDelay")));
        new Clearinghouse(token, owner, owner, 30 days + 1, c, bytes32(0), s, 1);
        Clearinghouse ok = new Clearinghouse(token, owner, owner, 60, c, bytes32(0), s, 1);
        assertEq(ok.timelockDelay(), 60, "minimum delay accepted");
    }

    function test_guardianCanPauseButNotChangeParams() public {
        vm.prank(guardian);
        ch.setPaused(true, true);
        assertTrue(ch.tradingPaused() && ch.withdrawalsPaused(), "paused");
        vm.prank(owner);
        ch.setPaused(false, false); // the owner may resume
        assertFalse(ch.tradingPaused(), "resumed");
    }
}


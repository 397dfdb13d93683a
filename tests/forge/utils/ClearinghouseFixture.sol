// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Test} from "./Test.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {DevStablecoin} from "../../../contracts/periphery/DevStablecoin.sol";
import {
    InstrumentKind,
    MarginAttestation,
    Order,
    RiskConfig,
    SettlementPrice,
    SnapshotHeartbeat
} from "../../../contracts/interfaces/IClearinghouse.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {Digests} from "./Digests.sol";

/// @notice Deploys a clearinghouse with an m-of-n oracle set whose keys the test holds, and
///         signs attestations and orders the way the off-chain oracle and makers do.
abstract contract ClearinghouseFixture is Test {
    using Digests for Clearinghouse;

    uint256 internal constant WAD = 1e18;
    uint256 internal constant TIMELOCK = 1 days;
    bytes32 internal constant ETH = "ETH";

    address internal owner = address(0x0A);
    address internal guardian = address(0x6A);
    uint256 internal aliceKey = 0xA11CE;
    uint256 internal bobKey = 0xB0B;
    uint256 internal carolKey = 0xCA401;
    address internal alice;
    address internal bob;
    address internal carol;

    DevStablecoin internal usdc;
    Clearinghouse internal ch;
    uint256 internal perpId;
    uint256 internal callId;
    uint256 internal putId;
    uint64 internal expiry;

    /// oracle keys, sorted so that their addresses ascend
    uint256[] internal oracleKeys;
    /// the risk-model version the test's oracle signs attestations under
    uint32 internal attestVersion = 1;

    function defaultConfig() internal pure virtual returns (RiskConfig memory) {
        return RiskConfig({
            paramsVersion: 1,
            maxSnapshotAge: 120,
            snapshotTolerance: 30,
            maxPositions: 8,
            takerFee: 0.0005e18,
            liquidationBuffer: 0.1e18,
            liquidatorBonus: 0.1e18,
            insuranceFee: 0.05e18,
            dustMargin: 10e18
        });
    }

    function setUpClearinghouse(uint8 decimals, uint256 signerCount, uint8 threshold) internal {
        vm.warp(1_800_000_000);
        alice = vm.addr(aliceKey);
        bob = vm.addr(bobKey);
        carol = vm.addr(carolKey);
        delete oracleKeys;
        for (uint256 i; i < signerCount; ++i) {
            oracleKeys.push(0x5151 + i);
        }
        _sortKeysByAddress(oracleKeys);
        usdc = new DevStablecoin("Dev USD Coin", "dUSDC", decimals, address(this));
        ch = deployClearinghouse(IERC20(address(usdc)), oracleKeys, threshold);
        vm.startPrank(owner);
        perpId = ch.listInstrument(ETH, InstrumentKind.Perpetual, 0, 0);
        expiry = uint64(block.timestamp + 30 days);
        callId = ch.listInstrument(ETH, InstrumentKind.Call, 3000e18, expiry);
        putId = ch.listInstrument(ETH, InstrumentKind.Put, 3000e18, expiry);
        vm.stopPrank();
        vm.label(address(ch), "Clearinghouse");
        vm.label(alice, "alice");
        vm.label(bob, "bob");
        vm.label(carol, "carol");
    }

    function deployClearinghouse(IERC20 token, uint256[] memory keys, uint8 threshold)
        internal
        returns (Clearinghouse)
    {
        address[] memory signerAddrs = new address[](keys.length);
        for (uint256 i; i < keys.length; ++i) {
            signerAddrs[i] = vm.addr(keys[i]);
        }
        return new Clearinghouse(
            token, owner, guardian, TIMELOCK, defaultConfig(), keccak256("params-v1"), signerAddrs, threshold
        );
    }

    // ------------------------------------------------------------------ funding

    function tokenUnits(uint256 wholeUnits) internal view returns (uint256) {
        return wholeUnits * 10 ** usdc.decimals();
    }

    function fund(address account, uint256 wholeUnits) internal {
        uint256 amount = tokenUnits(wholeUnits);
        usdc.mint(account, amount);
        vm.startPrank(account);
        usdc.approve(address(ch), amount);
        ch.deposit(account, amount);
        vm.stopPrank();
    }

    // ------------------------------------------------------------------ attestations

    function attestation(address account, int256 value, uint256 im, uint256 mm)
        internal
        view
        returns (MarginAttestation memory)
    {
        return attestationFor(account, ch.stateHashOf(account), value, im, mm);
    }

    function attestationFor(address account, bytes32 stateHash, int256 value, uint256 im, uint256 mm)
        internal
        view
        returns (MarginAttestation memory)
    {
        return MarginAttestation({
            account: account,
            stateHash: stateHash,
            value: value,
            initialMargin: im,
            maintenanceMargin: mm,
            snapshotTime: uint64(block.timestamp),
            deadline: uint64(block.timestamp + 60),
            paramsVersion: attestVersion
        });
    }

    function signDigest(bytes32 digest, uint256[] memory keys) internal pure returns (bytes memory sigs) {
        for (uint256 i; i < keys.length; ++i) {
            (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[i], digest);
            sigs = bytes.concat(sigs, r, s, bytes1(v));
        }
    }

    function oracleSign(MarginAttestation memory att) internal view returns (bytes memory) {
        return signDigest(ch.marginAttestationDigest(att), oracleKeys);
    }

    function oracleSignWith(MarginAttestation memory att, uint256[] memory keys) internal view returns (bytes memory) {
        return signDigest(ch.marginAttestationDigest(att), keys);
    }

    function oracleSignPrice(SettlementPrice memory price) internal view returns (bytes memory) {
        return signDigest(ch.settlementPriceDigest(price), oracleKeys);
    }

    /// @dev The EIP-712 digest of a snapshot heartbeat under the clearinghouse's domain.
    function heartbeatDigest(uint64 snapshotTime) internal view returns (bytes32) {
        bytes32 structHash = keccak256(abi.encode(keccak256("SnapshotHeartbeat(uint64 snapshotTime)"), snapshotTime));
        return keccak256(abi.encodePacked("\x19\x01", ch.domainSeparator(), structHash));
    }

    /// @dev Posts the oracle's threshold-signed heartbeat "newest market data is from `t`".
    function postHeartbeat(uint64 t) internal {
        ch.postSnapshot(SnapshotHeartbeat(t), signDigest(heartbeatDigest(t), oracleKeys));
    }

    // ------------------------------------------------------------------ orders

    function order(address maker, uint256 instrumentId, int256 size, uint256 price, uint256 nonce)
        internal
        view
        returns (Order memory)
    {
        return Order({
            maker: maker,
            instrumentId: instrumentId,
            size: size,
            price: price,
            nonce: nonce,
            deadline: uint64(block.timestamp + 1 hours)
        });
    }

    function signOrder(Order memory o, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, ch.orderDigest(o));
        return abi.encodePacked(r, s, v);
    }

    /// @notice What the oracle attests for each side after a fill (values and IMs in WAD).
    struct Quote {
        int256 makerValue;
        uint256 makerIm;
        int256 takerValue;
        uint256 takerIm;
    }

    function quote(int256 makerValue, uint256 makerIm, int256 takerValue, uint256 takerIm)
        internal
        pure
        returns (Quote memory)
    {
        return Quote(makerValue, makerIm, takerValue, takerIm);
    }

    /// @dev Fills `o` by `taker` with post-trade attestations carrying the quoted values and IMs.
    function fill(Order memory o, uint256 makerKey, address taker, uint256 amount, Quote memory q) internal {
        (MarginAttestation memory ma, MarginAttestation memory ta) = postTradeAttestations(o, taker, amount, q);
        bytes memory makerSig = signOrder(o, makerKey);
        bytes memory maSigs = oracleSign(ma);
        bytes memory taSigs = oracleSign(ta);
        vm.prank(taker);
        ch.fillOrder(o, makerSig, amount, ma, maSigs, ta, taSigs);
    }

    /// @dev The suites' common opening: Alice buys 10 perpetuals from Bob at 3,000 (Bob's order
    /// nonce 1), both sides attested at the standard quote (values ∓30,000, IM 6,000 each).
    function aliceBuysTenPerpsFromBob() internal {
        fill(
            order(bob, perpId, -10e18, 3_000e18, 1),
            bobKey,
            alice,
            10e18,
            quote(-30_000e18, 6_000e18, 30_000e18, 6_000e18)
        );
    }

    /// @dev Prepares a fill exactly as `fill` does and expects it to revert with `revertData`.
    function expectFillRevert(
        Order memory o,
        uint256 makerKey,
        address taker,
        uint256 amount,
        Quote memory q,
        bytes memory revertData
    ) internal {
        (MarginAttestation memory ma, MarginAttestation memory ta) = postTradeAttestations(o, taker, amount, q);
        bytes memory makerSig = signOrder(o, makerKey);
        bytes memory maSigs = oracleSign(ma);
        bytes memory taSigs = oracleSign(ta);
        vm.prank(taker);
        vm.expectRevert(revertData);
        ch.fillOrder(o, makerSig, amount, ma, maSigs, ta, taSigs);
    }

    function postTradeAttestations(Order memory o, address taker, uint256 amount, Quote memory q)
        internal
        view
        returns (MarginAttestation memory ma, MarginAttestation memory ta)
    {
        int256 delta = o.size > 0 ? int256(amount) : -int256(amount);
        bytes32 makerNext = nextHash(o.maker, o.instrumentId, delta);
        bytes32 takerNext = nextHash(taker, o.instrumentId, -delta);
        ma = attestationFor(o.maker, makerNext, q.makerValue, q.makerIm, q.makerIm * 4 / 5);
        ta = attestationFor(taker, takerNext, q.takerValue, q.takerIm, q.takerIm * 4 / 5);
    }

    /// @dev The state hash `account` will have once its position in `id` moves by `delta`.
    function nextHash(address account, uint256 id, int256 delta) internal view returns (bytes32) {
        int256 next = ch.positionOf(account, id) + delta;
        return ch.nextStateHash(account, id, next);
    }

    // ------------------------------------------------------------------ helpers

    function _sortKeysByAddress(uint256[] storage keys) private {
        for (uint256 i = 1; i < keys.length; ++i) {
            for (uint256 j = i; j > 0 && vm.addr(keys[j - 1]) > vm.addr(keys[j]); --j) {
                (keys[j - 1], keys[j]) = (keys[j], keys[j - 1]);
            }
        }
    }

    function keysSlice(uint256 from, uint256 to) internal view returns (uint256[] memory out) {
        out = new uint256[](to - from);
        for (uint256 i = from; i < to; ++i) {
            out[i - from] = oracleKeys[i];
        }
    }
}

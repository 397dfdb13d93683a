// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {ClearinghouseFixture} from "./ClearinghouseFixture.sol";
import {MerkleBuilder} from "./MerkleBuilder.sol";
import {Digests} from "./Digests.sol";
import {InsuranceFund} from "../../../contracts/core/InsuranceFund.sol";
import {LiquidationEngine} from "../../../contracts/core/LiquidationEngine.sol";
import {IInsuranceFund} from "../../../contracts/interfaces/IInsuranceFund.sol";
import {AdlAttestation, AdlFill, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {MarginAttestation, RiskConfig, SnapshotCommitment} from "../../../contracts/interfaces/IClearinghouse.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";

/// @notice The clearinghouse with its insurance fund and liquidation engine wired in.
abstract contract LiquidationFixture is ClearinghouseFixture {
    InsuranceFund internal fundContract;
    LiquidationEngine internal engine;
    address internal keeper;
    uint256 internal keeperKey = 0x4EE9E4;

    function setUpLiquidation(uint256 signerCount, uint8 threshold) internal {
        setUpClearinghouse(6, signerCount, threshold);
        keeper = vm.addr(keeperKey);
        vm.label(keeper, "keeper");
        fundContract = new InsuranceFund(IERC20(address(usdc)), 6, address(ch), owner);
        engine = new LiquidationEngine(ch, IInsuranceFund(address(fundContract)));
        vm.startPrank(owner);
        ch.bootstrapInsuranceFund(IInsuranceFund(address(fundContract)));
        ch.bootstrapEngine(address(engine));
        vm.stopPrank();
    }

    function seedFund(uint256 wholeUnits) internal {
        uint256 amount = tokenUnits(wholeUnits);
        usdc.mint(address(this), amount);
        usdc.approve(address(fundContract), amount);
        fundContract.deposit(amount);
    }

    /// @dev Instrument id lists for `settle`.
    function ids1(uint256 id) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](1);
        ids[0] = id;
    }

    function ids2(uint256 a, uint256 b) internal pure returns (uint256[] memory ids) {
        ids = new uint256[](2);
        ids[0] = a;
        ids[1] = b;
    }

    // ------------------------------------------------------------------ alice's long book

    /// @dev Alice long 10 ETH perpetuals at 3,000 (6 sold by bob, 4 by carol), with 10,000 of
    ///      collateral; bob, carol and the keeper hold 100,000 each; the fund `fundSeed`.
    function openAliceLong(uint256 fundSeed) internal {
        setUpLiquidation(3, 2);
        beforeFirstDeposit();
        fund(alice, 10_000);
        fund(bob, 100_000);
        fund(carol, 100_000);
        fund(keeper, 100_000);
        seedFund(fundSeed);
        fill(
            order(bob, perpId, -6e18, 3_000e18, 1),
            bobKey,
            alice,
            6e18,
            quote(-18_000e18, 4_000e18, 18_000e18, 4_000e18)
        );
        fill(
            order(carol, perpId, -4e18, 3_000e18, 1),
            carolKey,
            alice,
            4e18,
            quote(-12_000e18, 3_000e18, 30_000e18, 6_000e18)
        );
    }

    /// @dev Wiring a test adds while the bootstrap is still open (the first deposit seals it).
    function beforeFirstDeposit() internal virtual {}

    // ------------------------------------------------------------------ snapshot commitments

    /// @dev Posts `root` (of `count` leaves) to `registry`, signed by `keys`, at this block's time.
    function postRoot(SnapshotCommitments registry, bytes32 root, uint256 count, uint256[] memory keys) internal {
        SnapshotCommitment memory c = SnapshotCommitment(
            root, uint64(block.timestamp), uint64(block.timestamp + 60), attestVersion, uint32(count)
        );
        registry.postCommitment(c, signDigest(Digests.commitmentDigest(ch, c), keys));
    }

    /// @dev The `sigs` bytes proving leaf `index` of `leaves` against `registry`'s posted root.
    function proofBytes(address registry, bytes32[] memory leaves, uint256 index)
        internal
        pure
        returns (bytes memory p)
    {
        p = abi.encodePacked(bytes32(uint256(uint160(registry))), MerkleBuilder.root(leaves));
        bytes32[] memory siblings = MerkleBuilder.proof(leaves, index);
        for (uint256 i; i < siblings.length; ++i) {
            p = bytes.concat(p, siblings[i]);
        }
    }

    function carolThenBob() internal view returns (address[] memory r) {
        r = new address[](2);
        r[0] = carol;
        r[1] = bob;
    }

    /// @dev The oracle's ADL (or backstop) plan for alice's perpetual at `mark` against `ranked`.
    function alicePlan(uint256 mark, address[] memory ranked)
        internal
        view
        returns (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills)
    {
        uint256[] memory ids = new uint256[](1);
        ids[0] = perpId;
        uint256[] memory marks = new uint256[](1);
        marks[0] = mark;
        bytes32[] memory roots = new bytes32[](1);
        (roots[0], fills) = queue(0, perpId, ranked);
        (att, sigs) = adlAttestation(alice, ids, marks, roots);
    }

    // ------------------------------------------------------------------ liquidation helpers

    function request(address account, int256 value, uint256 mm) internal view returns (LiquidationRequest memory r) {
        MarginAttestation memory att = attestation(account, value, mm * 5 / 4, mm);
        r = LiquidationRequest({account: account, att: att, sigs: oracleSign(att), maxFraction: WAD});
    }

    /// @dev The keeper's attestation of its current portfolio (value and IM supplied by the test,
    ///      the oracle's job): the liquidator's requirement is checked against its state before.
    function keeperNow(int256 value, uint256 im)
        internal
        view
        returns (MarginAttestation memory att, bytes memory sigs)
    {
        att = attestationFor(keeper, ch.stateHashOf(keeper), value, im, im * 4 / 5);
        sigs = oracleSign(att);
    }

    function sliceOf(int256 size, uint256 f) internal pure returns (int256) {
        uint256 abs = uint256(size >= 0 ? size : -size);
        uint256 part = (abs * f + WAD - 1) / WAD;
        if (part > abs) part = abs;
        return size >= 0 ? int256(part) : -int256(part);
    }

    function liquidateOne(address account, int256 value, uint256 mm, int256 keeperValue, uint256 keeperIm) internal {
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        reqs[0] = request(account, value, mm);
        (MarginAttestation memory katt, bytes memory ksigs) = keeperNow(keeperValue, keeperIm);
        vm.prank(keeper);
        engine.liquidate(reqs, katt, ksigs);
    }

    // ------------------------------------------------------------------ governance and versions

    /// @dev Schedules `c` as the owner and lets an outsider execute it once the timelock elapsed.
    function governConfig(RiskConfig memory c, bytes32 paramsHash) internal {
        vm.prank(owner);
        ch.scheduleRiskConfig(c, paramsHash);
        vm.warp(block.timestamp + TIMELOCK);
        vm.prank(address(0x0D751DE));
        ch.executeRiskConfig();
    }

    // ------------------------------------------------------------------ ADL helpers

    function adlAttestation(address account, uint256[] memory ids, uint256[] memory marks, bytes32[] memory roots)
        internal
        view
        returns (AdlAttestation memory att, bytes memory sigs)
    {
        att = AdlAttestation({
            account: account,
            stateHash: ch.stateHashOf(account),
            instrumentIds: ids,
            marks: marks,
            queueRoots: roots,
            snapshotTime: uint64(block.timestamp),
            deadline: uint64(block.timestamp + 60),
            paramsVersion: attestVersion
        });
        sigs = signDigest(_adlDigest(att), oracleKeys);
    }

    function _adlDigest(AdlAttestation memory att) internal view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", ch.domainSeparator(), engine.hashAdlAttestation(att)));
    }

    /// @dev A queue (ranked accounts) for one instrument: its root and every member's fill, each
    ///      committing to the member's current state hash and a portfolio value of 0 (its room
    ///      for the haircut is then its cash).
    function queue(uint256 leg, uint256 instrumentId, address[] memory ranked)
        internal
        view
        returns (bytes32 root, AdlFill[] memory fills)
    {
        return queueWithValues(leg, instrumentId, ranked, new int256[](ranked.length));
    }

    /// @dev As `queue`, with each member's attested portfolio value at the plan's marks.
    function queueWithValues(uint256 leg, uint256 instrumentId, address[] memory ranked, int256[] memory values)
        internal
        view
        returns (bytes32 root, AdlFill[] memory fills)
    {
        bytes32[] memory leaves = new bytes32[](ranked.length);
        bytes32[] memory hashes = new bytes32[](ranked.length);
        for (uint256 r; r < ranked.length; ++r) {
            hashes[r] = ch.stateHashOf(ranked[r]);
            leaves[r] = MerkleBuilder.leaf(instrumentId, r, ranked[r], hashes[r], values[r]);
        }
        root = MerkleBuilder.root(leaves);
        fills = new AdlFill[](ranked.length);
        for (uint256 r; r < ranked.length; ++r) {
            fills[r] = AdlFill({
                leg: leg,
                counterparty: ranked[r],
                rank: r,
                stateHash: hashes[r],
                value: values[r],
                proof: MerkleBuilder.proof(leaves, r)
            });
        }
    }
}

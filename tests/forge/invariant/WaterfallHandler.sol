// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "../utils/Vm.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {InsuranceFund} from "../../../contracts/core/InsuranceFund.sol";
import {LiquidationEngine} from "../../../contracts/core/LiquidationEngine.sol";
import {DevStablecoin} from "../../../contracts/periphery/DevStablecoin.sol";
import {MarginAttestation, Order, SnapshotCommitment} from "../../../contracts/interfaces/IClearinghouse.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";
import {AdlAttestation, AdlFill, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {Digests} from "../utils/Digests.sol";

/// @notice Drives trades, price moves, liquidations and deleveraging, acting as an honest oracle
///         with a linear model (value = Σ size × mark, MM = 16%, IM = 20% of Σ |size| × mark)
///         and recording ghost totals and any breach of the waterfall's rules.
contract WaterfallHandler {
    using Digests for Clearinghouse;

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant WAD = 1e18;

    Clearinghouse public immutable ch;
    InsuranceFund public immutable fund;
    LiquidationEngine public immutable engine;
    DevStablecoin public immutable usdc;
    uint256[] internal oracleKeys;
    uint256[] internal actorKeys;
    address[] public actors; // traders; the last one is the keeper
    uint256[] public instruments;
    mapping(uint256 => uint256) public mark;
    uint256 internal nonce;
    SnapshotCommitments public registry; // when set, every third liquidation is proven, not signed
    uint256 public provenLiquidations;

    // ghost state
    uint256 public ghostFundIn;
    uint256 public ghostFundOut;
    uint256 public liquidations;
    uint256 public deleveragings;
    bool public healthyLiquidated;
    bool public targetMissed;
    bool public adlWhileFundCouldCover;

    constructor(
        Clearinghouse ch_,
        InsuranceFund fund_,
        LiquidationEngine engine_,
        DevStablecoin usdc_,
        uint256[] memory oracleKeys_,
        uint256[] memory ids
    ) {
        ch = ch_;
        fund = fund_;
        engine = engine_;
        usdc = usdc_;
        oracleKeys = oracleKeys_;
        instruments = ids;
        mark[ids[0]] = 3_000e18;
        for (uint256 i = 1; i < ids.length; ++i) mark[ids[i]] = 200e18;
        for (uint256 i; i < 5; ++i) {
            actorKeys.push(0xF00D + i);
            actors.push(vm.addr(0xF00D + i));
        }
    }

    function setUpBalances() external {
        for (uint256 i; i < actors.length; ++i) {
            _deposit(actors[i], i == actors.length - 1 ? 10_000_000e6 : 20_000e6);
        }
        usdc.mint(address(this), 2_000e6);
        usdc.approve(address(fund), 2_000e6);
        fund.deposit(2_000e6);
        ghostFundIn += 2_000e18;
    }

    function keeper() public view returns (address) {
        return actors[actors.length - 1];
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function instrumentCount() external view returns (uint256) {
        return instruments.length;
    }

    // ------------------------------------------------------------------ actions

    function trade(uint256 makerSeed, uint256 takerSeed, uint256 instrumentSeed, uint256 amount, bool makerBuys) external {
        uint256 mi = makerSeed % (actors.length - 1);
        uint256 ti = takerSeed % (actors.length - 1);
        if (mi == ti) ti = (ti + 1) % (actors.length - 1);
        uint256 id = instruments[instrumentSeed % instruments.length];
        amount = 1e17 + amount % 20e18;
        Order memory o = Order(actors[mi], id, makerBuys ? int256(amount) : -int256(amount), mark[id], ++nonce, uint64(block.timestamp + 100));
        int256 delta = makerBuys ? int256(amount) : -int256(amount);
        MarginAttestation memory ma = _attestAfter(o.maker, id, delta);
        MarginAttestation memory ta = _attestAfter(actors[ti], id, -delta);
        bytes memory makerSig = _signWith(actorKeys[mi], ch.orderDigest(o));
        bytes memory maSigs = _sign(ch.marginAttestationDigest(ma));
        bytes memory taSigs = _sign(ch.marginAttestationDigest(ta));
        vm.prank(actors[ti]);
        try ch.fillOrder(o, makerSig, amount, ma, maSigs, ta, taSigs) {} catch {}
    }

    function useRegistry(SnapshotCommitments registry_) external {
        registry = registry_;
    }

    /// @dev Posts a commitment to `a` and `b` and returns each one's proof (the `sigs` bytes).
    function _prove(MarginAttestation memory a, MarginAttestation memory b)
        internal
        returns (bool ok, bytes memory pa, bytes memory pb)
    {
        bytes32[] memory leaves = new bytes32[](2);
        leaves[0] = Digests.leaf(a);
        leaves[1] = Digests.leaf(b);
        bytes32 root = MerkleBuilder.root(leaves);
        SnapshotCommitment memory c = SnapshotCommitment(root, a.snapshotTime, a.deadline, a.paramsVersion, 2);
        try registry.postCommitment(c, _sign(ch.commitmentDigest(c))) {} catch {
            return (false, "", "");
        }
        bytes memory head = abi.encodePacked(bytes32(uint256(uint160(address(registry)))), root);
        pa = bytes.concat(head, MerkleBuilder.proof(leaves, 0)[0]);
        pb = bytes.concat(head, MerkleBuilder.proof(leaves, 1)[0]);
        ok = true;
    }

    function movePrice(uint256 instrumentSeed, uint256 pctSeed) external {
        uint256 id = instruments[instrumentSeed % instruments.length];
        mark[id] = mark[id] * (88 + pctSeed % 25) / 100 + 1e18; // −12% … +12%
    }

    function liquidate(uint256 accountSeed) external {
        address a = actors[accountSeed % (actors.length - 1)];
        // half the time, the account closest to (or furthest below) maintenance margin
        if (accountSeed % 2 == 0) a = _weakest(false);
        if (a == address(0) || ch.openInstruments(a).length == 0) return;
        int256 equity = ch.cashOf(a) + _value(a);
        uint256 mm = _mm(a);
        bool healthy = equity >= int256(mm);
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        MarginAttestation memory att = _attest(a, ch.stateHashOf(a), _value(a), mm * 5 / 4, mm);
        reqs[0] = LiquidationRequest(a, att, _sign(ch.marginAttestationDigest(att)), WAD);
        (MarginAttestation memory katt, bytes memory ksigs, uint256 f) = _keeperNow(equity, mm);
        bool proven;
        if (address(registry) != address(0) && accountSeed % 3 == 1) {
            bytes memory pa;
            bytes memory pk;
            (proven, pa, pk) = _prove(att, katt);
            if (proven) (reqs[0].sigs, ksigs) = (pa, pk);
        }
        uint256 fundBefore = fund.fundBalance();
        vm.prank(keeper());
        try engine.liquidate(reqs, katt, ksigs) {
            liquidations++;
            if (proven) provenLiquidations++;
            if (healthy) healthyLiquidated = true;
            uint256 fundAfter = fund.fundBalance();
            if (fundAfter > fundBefore) ghostFundIn += fundAfter - fundBefore;
            else ghostFundOut += fundBefore - fundAfter;
            if (f < WAD) {
                int256 after_ = ch.cashOf(a) + _value(a);
                // (1 + 10% buffer) × MM of the remainder, with a few wei of rounding
                if (after_ + 10 < int256(_mm(a) * 11 / 10)) targetMissed = true;
            }
        } catch {}
    }

    function deleverage(uint256 accountSeed) external {
        address a = accountSeed % 4 == 0 ? actors[accountSeed % (actors.length - 1)] : _weakest(true);
        if (a == address(0)) return;
        uint256[] memory ids = _sortedOpen(a);
        if (ids.length == 0) return;
        int256 equity = ch.cashOf(a) + _value(a);
        if (equity >= 0) return;
        uint256 fundBefore = fund.fundBalance();
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = _adlPlan(a, ids);
        try engine.deleverage(att, sigs, fills) {
            deleveragings++;
            if (fundBefore >= uint256(-equity)) adlWhileFundCouldCover = true;
            ghostFundOut += fundBefore - fund.fundBalance();
        } catch {}
    }

    /// @dev The trader with the lowest equity − MM (bankrupt only: the lowest equity below zero).
    function _weakest(bool bankruptOnly) internal view returns (address weakest) {
        int256 lowest = type(int256).max;
        for (uint256 i; i + 1 < actors.length; ++i) {
            address a = actors[i];
            if (ch.openInstruments(a).length == 0) continue;
            int256 equity = ch.cashOf(a) + _value(a);
            int256 score = bankruptOnly ? equity : equity - int256(_mm(a));
            if (bankruptOnly && equity >= 0) continue;
            if (score < lowest) (lowest, weakest) = (score, a);
        }
    }

    // ------------------------------------------------------------------ model

    function _value(address a) internal view returns (int256 v) {
        for (uint256 i; i < instruments.length; ++i) {
            int256 s = ch.positionOf(a, instruments[i]);
            v += s >= 0
                ? int256(uint256(s) * mark[instruments[i]] / WAD)
                : -int256((uint256(-s) * mark[instruments[i]] + WAD - 1) / WAD);
        }
    }

    function _gross(address a) internal view returns (uint256 g) {
        for (uint256 i; i < instruments.length; ++i) {
            int256 s = ch.positionOf(a, instruments[i]);
            g += uint256(s >= 0 ? s : -s) * mark[instruments[i]] / WAD;
        }
    }

    function _mm(address a) internal view returns (uint256) {
        return _gross(a) * 16 / 100;
    }

    function _attestAfter(address a, uint256 id, int256 delta) internal view returns (MarginAttestation memory) {
        int256 next = ch.positionOf(a, id) + delta;
        int256 cur = ch.positionOf(a, id);
        uint256 gross = _gross(a) - uint256(cur >= 0 ? cur : -cur) * mark[id] / WAD + uint256(next >= 0 ? next : -next) * mark[id] / WAD;
        int256 value = _value(a) + delta * int256(mark[id]) / int256(WAD);
        return _attest(a, ch.nextStateHash(a, id, next), value, gross / 5, gross * 16 / 100);
    }

    /// @dev The keeper's attestation of its current portfolio, and the fraction it will take.
    function _keeperNow(int256 equity, uint256 mm)
        internal
        view
        returns (MarginAttestation memory att, bytes memory sigs, uint256 f)
    {
        if (equity < int256(mm)) (f,,) = _terms(equity, mm);
        address k = keeper();
        uint256 gross = _gross(k);
        att = _attest(k, ch.stateHashOf(k), _value(k), gross / 5, gross * 16 / 100);
        sigs = _sign(ch.marginAttestationDigest(att));
    }

    function _terms(int256 equity, uint256 mm) internal view returns (uint256 f, uint256 b, uint256 fee) {
        try engine.liquidationTerms(equity, mm) returns (uint256 f_, uint256 b_, uint256 fee_) {
            return (f_, b_, fee_);
        } catch {
            return (0, 0, 0);
        }
    }

    function _slice(int256 size, uint256 f) internal pure returns (int256) {
        uint256 abs = uint256(size >= 0 ? size : -size);
        uint256 part = (abs * f + WAD - 1) / WAD;
        if (part > abs) part = abs;
        return size >= 0 ? int256(part) : -int256(part);
    }

    function _sortedOpen(address a) internal view returns (uint256[] memory ids) {
        ids = ch.openInstruments(a);
        for (uint256 i = 1; i < ids.length; ++i) {
            for (uint256 j = i; j > 0 && ids[j - 1] > ids[j]; --j) (ids[j - 1], ids[j]) = (ids[j], ids[j - 1]);
        }
    }

    /// @dev Queue per leg: every other account holding the opposite side, in address order.
    function _adlPlan(address a, uint256[] memory ids)
        internal
        view
        returns (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills)
    {
        uint256[] memory marks = new uint256[](ids.length);
        bytes32[] memory roots = new bytes32[](ids.length);
        AdlFill[][] memory perLeg = new AdlFill[][](ids.length);
        uint256 n;
        for (uint256 leg; leg < ids.length; ++leg) {
            marks[leg] = mark[ids[leg]];
            (roots[leg], perLeg[leg]) = _legQueue(a, ids[leg], leg);
            n += perLeg[leg].length;
        }
        fills = new AdlFill[](n);
        n = 0;
        for (uint256 leg; leg < ids.length; ++leg) {
            for (uint256 i; i < perLeg[leg].length; ++i) fills[n++] = perLeg[leg][i];
        }
        att = AdlAttestation(a, ch.stateHashOf(a), ids, marks, roots, uint64(block.timestamp), uint64(block.timestamp + 60), 1);
        sigs = _sign(keccak256(abi.encodePacked("\x19\x01", ch.domainSeparator(), engine.hashAdlAttestation(att))));
    }

    function _legQueue(address a, uint256 id, uint256 leg) internal view returns (bytes32 root, AdlFill[] memory fills) {
        int256 size = ch.positionOf(a, id);
        address[] memory ranked = new address[](actors.length);
        uint256 m;
        for (uint256 i; i < actors.length; ++i) {
            int256 theirs = ch.positionOf(actors[i], id);
            if (actors[i] != a && theirs != 0 && (theirs > 0) != (size > 0)) ranked[m++] = actors[i];
        }
        if (m == 0) ranked[m++] = a; // an empty queue: ADL cannot complete and the call reverts
        bytes32[] memory leaves = new bytes32[](m);
        bytes32[] memory hashes = new bytes32[](m);
        int256[] memory values = new int256[](m);
        for (uint256 r; r < m; ++r) {
            hashes[r] = ch.stateHashOf(ranked[r]);
            values[r] = _value(ranked[r]);
            leaves[r] = MerkleBuilder.leaf(id, r, ranked[r], hashes[r], values[r]);
        }
        root = MerkleBuilder.root(leaves);
        uint256 remaining = uint256(size > 0 ? size : -size);
        uint256 used;
        while (used < m && remaining > 0) {
            int256 theirs = ch.positionOf(ranked[used], id);
            uint256 abs = uint256(theirs > 0 ? theirs : -theirs);
            remaining = abs >= remaining ? 0 : remaining - abs;
            ++used;
        }
        fills = new AdlFill[](used);
        for (uint256 r; r < used; ++r) {
            fills[r] = AdlFill(leg, ranked[r], r, hashes[r], values[r], MerkleBuilder.proof(leaves, r));
        }
    }

    // ------------------------------------------------------------------ internals

    function _deposit(address a, uint256 amount) internal {
        usdc.mint(a, amount);
        vm.startPrank(a);
        usdc.approve(address(ch), amount);
        ch.deposit(a, amount);
        vm.stopPrank();
    }

    function _attest(address a, bytes32 h, int256 value, uint256 im, uint256 mm)
        internal
        view
        returns (MarginAttestation memory)
    {
        return MarginAttestation(a, h, value, im, mm, uint64(block.timestamp), uint64(block.timestamp + 60), 1);
    }

    function _sign(bytes32 digest) internal view returns (bytes memory sigs) {
        for (uint256 i; i < oracleKeys.length; ++i) sigs = bytes.concat(sigs, _signWith(oracleKeys[i], digest));
    }

    function _signWith(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }
}

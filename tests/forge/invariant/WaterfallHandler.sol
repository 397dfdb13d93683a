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
/// @dev Every run liquidates (signed and proven) and deleverages at least once: until a path has
///      succeeded in the run, its handler first makes the smallest market move that makes it due
///      (`_moveAgainstOne`); from then on the fuzzer's inputs alone decide.
contract WaterfallHandler {
    using Digests for Clearinghouse;

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant WAD = 1e18;
    /// @dev The largest market move the handler makes to put a path in reach: a doubling or a
    ///      halving. Larger gaps reach marks at which a wei of position is worth more than the
    ///      rounding tolerance of the checks below.
    uint256 internal constant MAX_MOVE = 2 * WAD;

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

    // ghost state
    uint256 public ghostFundIn;
    uint256 public ghostFundOut;

    // successful calls of each path that swallows reverts: one that always reverted would
    // otherwise pass every invariant unexercised (price moves never revert)
    uint256 public trades;
    uint256 public liquidations; // signed and proven
    uint256 public provenLiquidations;
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
        for (uint256 i = 1; i < ids.length; ++i) {
            mark[ids[i]] = 200e18;
        }
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

    function trade(uint256 makerSeed, uint256 takerSeed, uint256 instrumentSeed, uint256 amount, bool makerBuys)
        external
    {
        uint256 id = instruments[instrumentSeed % instruments.length];
        (uint256 mi, uint256 ti, uint256 size) = _sides(makerSeed, takerSeed, id, amount);
        _trade(mi, ti, id, size, makerBuys);
    }

    /// @dev Trader `mi` (maker) and trader `ti` (taker) trade `amount` of `id` at the mark.
    function _trade(uint256 mi, uint256 ti, uint256 id, uint256 amount, bool makerBuys) internal returns (bool ok) {
        Order memory o = Order(
            actors[mi],
            id,
            makerBuys ? int256(amount) : -int256(amount),
            mark[id],
            ++nonce,
            uint64(block.timestamp + 100)
        );
        int256 delta = makerBuys ? int256(amount) : -int256(amount);
        MarginAttestation memory ma = _attestAfter(o.maker, id, delta);
        MarginAttestation memory ta = _attestAfter(actors[ti], id, -delta);
        bytes memory makerSig = _signWith(actorKeys[mi], ch.orderDigest(o));
        bytes memory maSigs = _sign(ch.marginAttestationDigest(ma));
        bytes memory taSigs = _sign(ch.marginAttestationDigest(ta));
        vm.prank(actors[ti]);
        try ch.fillOrder(o, makerSig, amount, ma, maSigs, ta, taSigs) {
            trades++;
            ok = true;
        } catch {}
    }

    /// @dev Maker, taker and size of a trade: any two traders and 0.1 to 20 contracts, or (half
    ///      the time) two that can afford at least the smallest trade, no larger than both can
    ///      afford — so fills keep happening after a crash has left some traders with nothing.
    ///      25% of the mark per contract covers the IM and the fee.
    function _sides(uint256 makerSeed, uint256 takerSeed, uint256 id, uint256 amount)
        internal
        view
        returns (uint256 mi, uint256 ti, uint256 size)
    {
        uint256 traders = actors.length - 1;
        mi = makerSeed % traders;
        ti = takerSeed % traders;
        if (mi == ti) ti = (ti + 1) % traders;
        size = 1e17 + amount % 20e18;
        if (amount % 2 == 1) return (mi, ti, size);
        uint256 minFree = mark[id] / 40; // a quarter of the smallest trade's notional
        mi = _nextFree(mi, traders, minFree);
        ti = _nextFree(ti, mi, minFree);
        int256 free = _free(actors[mi]) < _free(actors[ti]) ? _free(actors[mi]) : _free(actors[ti]);
        uint256 affordable = free > 0 ? uint256(free) * 4 * WAD / mark[id] : 0;
        if (affordable < size) size = affordable < 1e17 ? 1e17 : affordable;
    }

    /// @dev The first trader from `i` on (cyclically) other than `other` with at least `minFree` of
    ///      equity above IM, or `i` itself (another trader if `i` is `other`) when there is none.
    function _nextFree(uint256 i, uint256 other, uint256 minFree) internal view returns (uint256) {
        uint256 traders = actors.length - 1;
        for (uint256 k; k < traders; ++k) {
            uint256 j = (i + k) % traders;
            if (j != other && _free(actors[j]) >= int256(minFree)) return j;
        }
        return i == other ? (i + 1) % traders : i;
    }

    /// @dev Equity above IM in the model.
    function _free(address a) internal view returns (int256) {
        return ch.cashOf(a) + _value(a) - int256(_gross(a) / 5);
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
        try registry.postCommitment(c, _sign(ch.commitmentDigest(c))) {}
        catch {
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
        bool proven = _provenNext(accountSeed); // if the proof posts
        // Until its kind has run in the run, the call takes a trader below MM, after the smallest
        // market move that puts one there: left to chance, most runs never liquidate.
        if ((proven ? provenLiquidations : liquidations - provenLiquidations) == 0) {
            address pushed = _moveAgainstOne(true);
            if (pushed != address(0)) a = pushed;
        }
        if (a == address(0) || ch.openInstruments(a).length == 0) return;
        int256 equity = ch.cashOf(a) + _value(a);
        uint256 mm = _mm(a);
        bool healthy = equity >= int256(mm);
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        MarginAttestation memory att = _attest(a, ch.stateHashOf(a), _value(a), mm * 5 / 4, mm);
        reqs[0] = LiquidationRequest(a, att, _sign(ch.marginAttestationDigest(att)), WAD);
        (MarginAttestation memory katt, bytes memory ksigs, uint256 f) = _keeperNow(equity, mm);
        if (proven) {
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

    /// @dev Whether a liquidation is proven rather than signed: every third with a registry, but
    ///      once one kind has run in the run, the other until it has too.
    function _provenNext(uint256 accountSeed) internal view returns (bool) {
        if (address(registry) == address(0)) return false;
        bool signedRan = liquidations != provenLiquidations;
        if (signedRan != (provenLiquidations != 0)) return signedRan;
        return accountSeed % 3 == 1;
    }

    function deleverage(uint256 accountSeed) external {
        address a = accountSeed % 4 == 0 ? actors[accountSeed % (actors.length - 1)] : _weakest(true);
        // Until one deleveraging has run in the run, it takes a trader beyond what the fund can
        // cover, after the smallest gap move that puts one there: left to chance, almost no run
        // reaches ADL.
        if (deleveragings == 0) {
            address pushed = _moveAgainstOne(false);
            if (pushed != address(0)) a = pushed;
        }
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

    /// @dev Takes a trader below MM (`belowMm`) or beyond what the fund can cover with the smallest
    ///      move of one mark that does it — at most a doubling or a halving, and one the keeper
    ///      stands. When no trader is that close, the two with the most equity above IM first
    ///      open a position at the most they can afford. Returns the trader (one already there
    ///      needs no move), or address(0) when none could be put there.
    function _moveAgainstOne(bool belowMm) internal returns (address target) {
        target = _moveWithin(belowMm);
        if (target != address(0) || !_openLevered()) return target;
        return _moveWithin(belowMm);
    }

    /// @dev `_moveAgainstOne` among the positions as they are.
    function _moveWithin(bool belowMm) internal returns (address target) {
        uint256 best = MAX_MOVE + 1; // the move's size: the ratio of the marks (WAD, ≥ 1)
        uint256 bestId;
        uint256 bestMark;
        for (uint256 i; i + 1 < actors.length; ++i) {
            address a = actors[i];
            if (_pastThreshold(a, belowMm)) return a;
            for (uint256 j; j < instruments.length; ++j) {
                uint256 id = instruments[j];
                uint256 m = _markAgainst(a, id, belowMm);
                if (m == 0) continue;
                uint256 size = m > mark[id] ? m * WAD / mark[id] : mark[id] * WAD / m;
                if (size < best && _keeperStands(id, m)) (best, target, bestId, bestMark) = (size, a, id, m);
            }
        }
        if (target != address(0)) mark[bestId] = bestMark;
    }

    /// @dev The two traders with the most equity above IM trade 90% of what the poorer of them can
    ///      afford (the richer buys) of the first instrument the keeper holds none of (the
    ///      perpetual if it holds all). Returns whether the trade filled.
    function _openLevered() internal returns (bool) {
        uint256 first;
        uint256 second = 1;
        for (uint256 i = 1; i + 1 < actors.length; ++i) {
            if (_free(actors[i]) > _free(actors[first])) (first, second) = (i, first);
            else if (i != second && _free(actors[i]) > _free(actors[second])) second = i;
        }
        uint256 id = instruments[0];
        for (uint256 j; j < instruments.length; ++j) {
            if (ch.positionOf(keeper(), instruments[j]) == 0) {
                id = instruments[j];
                break;
            }
        }
        int256 free = _free(actors[second]);
        if (free <= 0) return false;
        uint256 size = uint256(free) * 4 * WAD / mark[id] * 9 / 10;
        return size != 0 && _trade(first, second, id, size, true);
    }

    /// @dev Whether the keeper, the only liquidator, keeps at least twice its IM (40% of its gross)
    ///      when the mark of `id` moves to `m`: a move that broke it would end every liquidation.
    function _keeperStands(uint256 id, uint256 m) internal view returns (bool) {
        address k = keeper();
        int256 s = ch.positionOf(k, id);
        if (s == 0) return true;
        uint256 q = uint256(s > 0 ? s : -s);
        int256 equity = ch.cashOf(k) + _value(k) + s * (int256(m) - int256(mark[id])) / int256(WAD);
        uint256 gross = _gross(k) - q * mark[id] / WAD + q * m / WAD;
        return equity >= int256(gross * 2 / 5);
    }

    /// @dev Below MM but within the fund's reach (`belowMm`: liquidatable), or beyond the fund.
    function _pastThreshold(address a, bool belowMm) internal view returns (bool) {
        if (ch.openInstruments(a).length == 0) return false;
        int256 equity = ch.cashOf(a) + _value(a);
        int256 fundBalance = int256(fund.fundBalance());
        return belowMm ? equity < int256(_mm(a)) && equity >= -fundBalance : equity < -fundBalance;
    }

    /// @dev The mark of `id` 1% past the one at which `a` crosses the threshold (a short's above,
    ///      a long's below), or 0 when none is, or `a` holds none of `id`. In the model, with
    ///      q = |size|, E = equity and G = gross without the leg: below MM needs
    ///      E − 16% G < (1.16 q m) for a short, < (−0.84 q m) for a long; beyond the fund F needs
    ///      E + F < q m for a short, < −q m for a long.
    function _markAgainst(address a, uint256 id, bool belowMm) internal view returns (uint256 m) {
        int256 s = ch.positionOf(a, id);
        if (s == 0) return 0;
        uint256 q = uint256(s > 0 ? s : -s);
        int256 legValue = s > 0 ? int256(q * mark[id] / WAD) : -int256((q * mark[id] + WAD - 1) / WAD);
        int256 rest = ch.cashOf(a) + _value(a) - legValue;
        int256 k =
            belowMm ? rest - int256((_gross(a) - q * mark[id] / WAD) * 16 / 100) : rest + int256(fund.fundBalance());
        uint256 per = belowMm ? (s < 0 ? 116 : 84) : 100; // the leg's weight, in % of q × m
        if (s < 0) return k <= 0 ? 0 : uint256(k) * WAD / q * 100 / per * 101 / 100 + 1;
        return k >= 0 ? 0 : uint256(-k) * WAD / q * 100 / per * 99 / 100;
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
        uint256 gross = _gross(a) - uint256(cur >= 0 ? cur : -cur) * mark[id] / WAD + uint256(next >= 0 ? next : -next)
            * mark[id] / WAD;
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
            for (uint256 j = i; j > 0 && ids[j - 1] > ids[j]; --j) {
                (ids[j - 1], ids[j]) = (ids[j], ids[j - 1]);
            }
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
            for (uint256 i; i < perLeg[leg].length; ++i) {
                fills[n++] = perLeg[leg][i];
            }
        }
        att = AdlAttestation(
            a, ch.stateHashOf(a), ids, marks, roots, uint64(block.timestamp), uint64(block.timestamp + 60), 1
        );
        sigs = _sign(keccak256(abi.encodePacked("\x19\x01", ch.domainSeparator(), engine.hashAdlAttestation(att))));
    }

    function _legQueue(address a, uint256 id, uint256 leg)
        internal
        view
        returns (bytes32 root, AdlFill[] memory fills)
    {
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
        for (uint256 i; i < oracleKeys.length; ++i) {
            sigs = bytes.concat(sigs, _signWith(oracleKeys[i], digest));
        }
    }

    function _signWith(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }
}

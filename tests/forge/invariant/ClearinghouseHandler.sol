// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "../utils/Vm.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {DevStablecoin} from "../../../contracts/periphery/DevStablecoin.sol";
import {MarginAttestation, Order, SnapshotCommitment} from "../../../contracts/interfaces/IClearinghouse.sol";
import {SnapshotCommitments} from "../../../contracts/core/SnapshotCommitments.sol";
import {Digests} from "../utils/Digests.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";

/// @notice Drives the clearinghouse with random deposits, withdrawals, trades and price moves,
///         acting as an honest oracle with a simple model (value = Σ size × mark, IM = 20% of
///         Σ |size| × mark) and keeping ghost totals to check the contract against.
contract ClearinghouseHandler {
    using Digests for Clearinghouse;

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant WAD = 1e18;

    Clearinghouse public immutable ch;
    DevStablecoin public immutable usdc;
    uint256[] internal oracleKeys;
    uint256[] public actorKeys;
    address[] public actors;
    uint256[] public instruments;
    mapping(uint256 => uint256) public mark; // WAD price per contract

    // ghost state
    uint256 public ghostDeposited; // WAD
    uint256 public ghostWithdrawn; // WAD
    uint256 public ghostFees; // WAD
    bool public imViolated;
    uint256 internal nonce;
    SnapshotCommitments public registry; // whole-book commitments (withdrawWithProof)

    // successful calls of each path that swallows reverts: one that always reverted would
    // otherwise pass every invariant unexercised (deposits, price moves and time never revert)
    uint256 public signedWithdrawals;
    uint256 public proofWithdrawals;
    uint256 public trades;

    constructor(Clearinghouse ch_, DevStablecoin usdc_, uint256[] memory oracleKeys_, uint256[] memory instrumentIds) {
        ch = ch_;
        usdc = usdc_;
        oracleKeys = oracleKeys_;
        for (uint256 i; i < 4; ++i) {
            uint256 key = 0xAC70 + i;
            actorKeys.push(key);
            actors.push(vm.addr(key));
        }
        instruments = instrumentIds;
        for (uint256 i; i < instrumentIds.length; ++i) {
            mark[instrumentIds[i]] = i == 0 ? 3_000e18 : 150e18;
        }
    }

    function useRegistry(SnapshotCommitments registry_) external {
        registry = registry_;
    }

    /// @notice Every actor starts with 10,000 units deposited, so that trades and withdrawals can
    ///         succeed from a run's first call.
    function setUpBalances() external {
        for (uint256 i; i < actors.length; ++i) {
            _deposit(actors[i], 10_000e6);
        }
    }

    function actorCount() external view returns (uint256) {
        return actors.length;
    }

    function instrumentCount() external view returns (uint256) {
        return instruments.length;
    }

    // ------------------------------------------------------------------ actions

    function deposit(uint256 actorSeed, uint256 amount) external {
        _deposit(actors[actorSeed % actors.length], _bound(amount, 1, 1_000_000e6));
    }

    function withdraw(uint256 actorSeed, uint256 amount) external {
        address a = actors[actorSeed % actors.length];
        amount = _amount(a, amount);
        MarginAttestation memory att = _attest(a, ch.stateHashOf(a), _value(a), _im(a));
        bytes memory sigs = _sign(ch.marginAttestationDigest(att));
        vm.prank(a);
        try ch.withdraw(amount, a, att, sigs) {
            ghostWithdrawn += amount * 1e12;
            signedWithdrawals++;
            _checkIm(a);
        } catch {}
    }

    /// @dev The same withdrawal, proven against a freshly posted commitment to every actor's
    ///      honest attestation instead of signed.
    function withdrawWithProof(uint256 actorSeed, uint256 amount) external {
        uint256 ai = actorSeed % actors.length;
        amount = _amount(actors[ai], amount);
        MarginAttestation[] memory atts = new MarginAttestation[](actors.length);
        bytes32[] memory leaves = new bytes32[](actors.length);
        for (uint256 i; i < actors.length; ++i) {
            atts[i] = _attest(actors[i], ch.stateHashOf(actors[i]), _value(actors[i]), _im(actors[i]));
            leaves[i] = Digests.leaf(atts[i]);
        }
        bytes32 root = MerkleBuilder.root(leaves);
        SnapshotCommitment memory c =
            SnapshotCommitment(root, uint64(block.timestamp), uint64(block.timestamp + 60), 1, uint32(actors.length));
        try registry.postCommitment(c, _sign(ch.commitmentDigest(c))) {}
        catch {
            return; // e.g. identical books at the same time: the root is posted already
        }
        bytes memory proof = abi.encodePacked(bytes32(uint256(uint160(address(registry)))), root);
        bytes32[] memory siblings = MerkleBuilder.proof(leaves, ai);
        for (uint256 i; i < siblings.length; ++i) {
            proof = bytes.concat(proof, siblings[i]);
        }
        address a = actors[ai];
        vm.prank(a);
        try ch.withdraw(amount, a, atts[ai], proof) {
            ghostWithdrawn += amount * 1e12;
            proofWithdrawals++;
            _checkIm(a);
        } catch {}
    }

    function trade(
        uint256 makerSeed,
        uint256 takerSeed,
        uint256 instrumentSeed,
        uint256 amount,
        bool makerBuys,
        uint256 priceSeed
    ) external {
        uint256 mi = makerSeed % actors.length;
        uint256 ti = takerSeed % actors.length;
        if (mi == ti) ti = (ti + 1) % actors.length;
        uint256 id = instruments[instrumentSeed % instruments.length];
        uint256 most = 20e18;
        if (amount % 2 == 0) {
            // Half the time between accounts with equity above IM, no larger than both can afford
            // (so runs exercise fills too, not only refusals): 30% of the mark per contract covers
            // the IM, the price gap and the fee.
            uint256 minFree = mark[id] * 3 / 10_000; // 30% of the smallest trade, 1e15 contracts
            mi = _nextFree(mi, actors.length, minFree);
            ti = _nextFree(ti, mi, minFree);
            int256 free = _free(actors[mi]) < _free(actors[ti]) ? _free(actors[mi]) : _free(actors[ti]);
            uint256 affordable = free > 0 ? uint256(free) * 10 / 3 * WAD / mark[id] : 0;
            if (affordable < most) most = affordable < 1e15 ? 1e15 : affordable;
        }
        amount = _bound(amount, 1e15, most);
        // trade within ±5% of the mark
        uint256 price = mark[id] * _bound(priceSeed, 95, 105) / 100;
        Order memory o = Order({
            maker: actors[mi],
            instrumentId: id,
            size: makerBuys ? int256(amount) : -int256(amount),
            price: price,
            nonce: ++nonce,
            deadline: uint64(block.timestamp + 100)
        });
        _fill(o, actorKeys[mi], actors[ti], amount);
    }

    function movePrice(uint256 instrumentSeed, uint256 moveSeed) external {
        uint256 id = instruments[instrumentSeed % instruments.length];
        uint256 pct = _bound(moveSeed, 80, 120);
        mark[id] = mark[id] * pct / 100 + 1;
    }

    function passTime(uint256 secondsSeed) external {
        vm.warp(block.timestamp + _bound(secondsSeed, 1, 30));
    }

    // ------------------------------------------------------------------ model

    function _value(address a) internal view returns (int256 v) {
        for (uint256 i; i < instruments.length; ++i) {
            v += ch.positionOf(a, instruments[i]) * int256(mark[instruments[i]]) / int256(WAD);
        }
    }

    function _im(address a) internal view returns (uint256 im) {
        for (uint256 i; i < instruments.length; ++i) {
            int256 s = ch.positionOf(a, instruments[i]);
            uint256 abs = uint256(s >= 0 ? s : -s);
            im += abs * mark[instruments[i]] / WAD / 5;
        }
    }

    /// @dev The first actor from `i` on (cyclically) other than `other` with at least `minFree` of
    ///      equity above IM, or `i` itself when there is none.
    function _nextFree(uint256 i, uint256 other, uint256 minFree) internal view returns (uint256) {
        for (uint256 k; k < actors.length; ++k) {
            uint256 j = (i + k) % actors.length;
            if (j != other && _free(actors[j]) >= int256(minFree)) return j;
        }
        return i == other ? (i + 1) % actors.length : i;
    }

    /// @dev Equity above IM in the model: what the account could withdraw or commit to a trade.
    function _free(address a) internal view returns (int256) {
        return ch.cashOf(a) + _value(a) - int256(_im(a));
    }

    function _checkIm(address a) internal {
        if (ch.openInstruments(a).length == 0) {
            if (ch.cashOf(a) < 0) imViolated = true;
        } else if (ch.cashOf(a) + _value(a) < int256(_im(a))) {
            imViolated = true;
        }
    }

    // ------------------------------------------------------------------ internals

    function _deposit(address a, uint256 amount) internal {
        usdc.mint(a, amount);
        vm.startPrank(a);
        usdc.approve(address(ch), amount);
        ch.deposit(a, amount);
        vm.stopPrank();
        ghostDeposited += amount * 1e12;
    }

    function _fill(Order memory o, uint256 makerKey, address taker, uint256 amount) internal {
        int256 delta = o.size > 0 ? int256(amount) : -int256(amount);
        MarginAttestation memory ma = _postTrade(o.maker, o.instrumentId, delta);
        MarginAttestation memory ta = _postTrade(taker, o.instrumentId, -delta);
        bytes memory makerSig = _signWith(makerKey, ch.orderDigest(o));
        bytes memory maSigs = _sign(ch.marginAttestationDigest(ma));
        bytes memory taSigs = _sign(ch.marginAttestationDigest(ta));
        uint256 feesBefore = ch.protocolFees();
        vm.prank(taker);
        try ch.fillOrder(o, makerSig, amount, ma, maSigs, ta, taSigs) {
            trades++;
            ghostFees += ch.protocolFees() - feesBefore;
            _checkIm(o.maker);
            _checkIm(taker);
        } catch {}
    }

    /// @dev The honest attestation of `a` after its position in `id` moves by `delta`.
    function _postTrade(address a, uint256 id, int256 delta) internal view returns (MarginAttestation memory) {
        int256 next = ch.positionOf(a, id) + delta;
        int256 value = _value(a) + delta * int256(mark[id]) / int256(WAD);
        uint256 im = _im(a);
        int256 oldSize = ch.positionOf(a, id);
        uint256 oldAbs = uint256(oldSize >= 0 ? oldSize : -oldSize);
        uint256 newAbs = uint256(next >= 0 ? next : -next);
        im = im - oldAbs * mark[id] / WAD / 5 + newAbs * mark[id] / WAD / 5;
        return _attest(a, ch.nextStateHash(a, id, next), value, im);
    }

    function _attest(address a, bytes32 stateHash, int256 value, uint256 im)
        internal
        view
        returns (MarginAttestation memory)
    {
        return MarginAttestation({
            account: a,
            stateHash: stateHash,
            value: value,
            initialMargin: im,
            maintenanceMargin: im * 4 / 5,
            snapshotTime: uint64(block.timestamp),
            deadline: uint64(block.timestamp + 60),
            paramsVersion: 1
        });
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

    /// @dev A withdrawal amount: half the time within the account's cash and its equity above IM
    ///      (so runs exercise the successful path too, not only refusals), otherwise anything up
    ///      to 1M units.
    function _amount(address a, uint256 seed) internal view returns (uint256) {
        int256 cash = ch.cashOf(a);
        int256 free = _free(a);
        int256 room = cash < free ? cash : free;
        if (seed % 2 == 0 && room >= 1e12) return _bound(seed / 2, 1, uint256(room) / 1e12);
        return _bound(seed, 1, 1_000_000e6);
    }

    function _bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        return lo + x % (hi - lo + 1);
    }
}

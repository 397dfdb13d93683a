// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Vm} from "../utils/Vm.sol";
import {MerkleBuilder} from "../utils/MerkleBuilder.sol";
import {Clearinghouse} from "../../../contracts/core/Clearinghouse.sol";
import {InsuranceFund} from "../../../contracts/core/InsuranceFund.sol";
import {LiquidationEngine} from "../../../contracts/core/LiquidationEngine.sol";
import {DevStablecoin} from "../../../contracts/periphery/DevStablecoin.sol";
import {
    IClearinghouse,
    InstrumentKind,
    MarginAttestation,
    Order,
    RiskConfig,
    SettlementPrice
} from "../../../contracts/interfaces/IClearinghouse.sol";
import {AdlAttestation, AdlFill, LiquidationRequest} from "../../../contracts/interfaces/ILiquidationEngine.sol";
import {Digests} from "../utils/Digests.sol";

/// @notice Drives the whole bad-debt life cycle: trades (levered traders, dust padding), price
///         falls and recoveries, liquidations by a keeper holding inventory and by empty-book
///         liquidators, bankruptcy flags and clears, deleveraging against levered counterparties,
///         option expiries (a settlement price bound to the expiry, payers then longs), fund
///         top-ups, deposits into third-party accounts, withdrawals, and governance changing the
///         position cap and the model version through the timelock. It acts as an honest oracle
///         with a linear model (value = Σ size × mark, MM 16% / IM 20% of Σ |size| × mark) and
///         records ghost totals and every breach of the waterfall's rules it observes.
/// @dev Checks that need to try an action without keeping it (could an empty-book liquidator
///      take this account? would clearFlag succeed?) run inside vm.snapshotState and are undone
///      with vm.revertToStateAndDelete; their verdict is recorded after the state is restored.
contract BadDebtHandler {
    using Digests for Clearinghouse;

    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));
    uint256 internal constant WAD = 1e18;
    bytes32 internal constant ETH = "ETH";
    uint256 internal constant TRADERS = 6; // accounts[0..5]; 4 and 5 are levered (small deposits)
    uint256 internal constant KEEPER = 6; // liquidates all the time and keeps its inventory
    uint256 internal constant LIQUIDATOR_0 = 7; // two liquidators that start with an empty book
    uint256 internal constant PROBE = 9; // deep pockets, never keeps a position (snapshots only)
    uint256 internal constant ACCOUNTS = 10;

    Clearinghouse public immutable ch;
    InsuranceFund public immutable fund;
    LiquidationEngine public immutable engine;
    DevStablecoin public immutable usdc;
    address public immutable owner;
    uint256 public immutable timelock;
    uint256 public immutable perpId;
    uint256[] internal oracleKeys;
    uint256[] internal keys;
    address[] public accounts;
    uint256[] public live; // tradable: the perpetual, this expiry's call and put, dust perpetuals
    uint256[] public all; // every instrument the handler trades or ever traded
    mapping(uint256 => uint256) public mark;
    uint64 public expiry;
    uint256 internal nonce;
    uint32 public version = 1;
    uint32 public previousVersion;
    uint64 public versionChangedAt;

    // ghost totals
    uint256 public ghostFundIn;
    uint256 public ghostFundOut;
    int256 public ghostGrossPayouts; // Σ settlement payouts before any shortfall: longs +, payers −
    uint256 public ghostShortfallCuts; // long settlements that had a shortfall to give back (rounding bound)

    // counters (to see what the campaign exercised)
    uint256 public trades;
    uint256 public liquidations;
    uint256 public emptyBookLiquidations;
    uint256 public deleveragings;
    uint256 public flagsSet;
    uint256 public flagsCleared;
    uint256 public settlements;
    uint256 public probes;
    uint256 public configChanges;

    // breaches
    bool public emptyBookRefused;
    bool public keeperRefused;
    bool public fundPaidBonus;
    bool public adlCounterpartyBelowZero;
    bool public resolvableFlagStuck;
    bool public flaggedWithoutBadDebt;
    bool public clearedWhileBeyondTheFund;
    bool public bankruptcyNotFlaggable;
    bool public withdrawnWhileGated;
    bool public healthyLiquidated;
    bool public targetMissed;
    bool public adlWhileFundCouldCover;
    bool public previousVersionRefused;
    bool public settlementStuck;
    bytes public lastFailure; // revert data behind the last breach, for the report

    constructor(
        Clearinghouse ch_,
        InsuranceFund fund_,
        LiquidationEngine engine_,
        DevStablecoin usdc_,
        uint256[] memory oracleKeys_,
        address owner_,
        uint256 timelock_,
        uint256 perpId_
    ) {
        ch = ch_;
        fund = fund_;
        engine = engine_;
        usdc = usdc_;
        oracleKeys = oracleKeys_;
        owner = owner_;
        timelock = timelock_;
        perpId = perpId_;
        for (uint256 i; i < ACCOUNTS; ++i) {
            keys.push(0xBD00 + i);
            accounts.push(vm.addr(0xBD00 + i));
        }
    }

    /// @dev Lists this expiry's options and four dust perpetuals, funds every account and the fund.
    function setUpMarket() external {
        live.push(perpId);
        all.push(perpId);
        mark[perpId] = 3_000e18;
        live.push(0);
        live.push(0);
        _listOptions(3_000e18);
        for (uint256 i; i < 4; ++i) {
            vm.prank(owner);
            uint256 id = ch.listInstrument(bytes32(uint256(bytes32("DUST")) + i), InstrumentKind.Perpetual, 0, 0);
            live.push(id);
            all.push(id);
            mark[id] = 50e18;
        }
        for (uint256 i; i < ACCOUNTS; ++i) {
            uint256 amount = i < 4 ? 20_000e6 : i < TRADERS ? 4_000e6 : i == KEEPER ? 10_000_000e6 : 5_000_000e6;
            _deposit(accounts[i], amount);
        }
        usdc.mint(address(this), 200e6);
        usdc.approve(address(fund), 200e6);
        fund.deposit(200e6);
        ghostFundIn += 200e18;
        // every run starts from books near their IM: perpetuals and options across the traders
        for (uint256 i; i < TRADERS; ++i) {
            uint256 j = (i + 1) % TRADERS;
            _fill(i, j, perpId, _levered(accounts[i], accounts[j], perpId, 60), i % 2 == 0);
            _fill(j, i, live[1 + i % 2], 5e18, i % 3 == 0);
        }
    }

    // ------------------------------------------------------------------ views for the invariants

    function accountCount() external pure returns (uint256) {
        return ACCOUNTS;
    }

    /// @dev The instruments anyone can hold: settled expiries are checked empty when they settle.
    function instrumentCount() external view returns (uint256) {
        return live.length;
    }

    function equityOf(address a) external view returns (int256) {
        return _equity(a);
    }

    function keeper() public view returns (address) {
        return accounts[KEEPER];
    }

    // ------------------------------------------------------------------ actions

    /// @dev Every action: settles an expiry that time has reached, keeps the fund ghosts, and
    ///      checks that every flagged account is either beyond the fund or clearable.
    modifier step() {
        uint256 fundBefore = fund.fundBalance();
        _;
        _settleIfExpired(nonce);
        uint256 fundAfter = fund.fundBalance();
        if (fundAfter > fundBefore) ghostFundIn += fundAfter - fundBefore;
        else ghostFundOut += fundBefore - fundAfter;
        _sweepFlags();
    }

    /// One to two bilateral trades between traders at the mark.
    function trade(uint256 seedA, uint256 seedB, uint256 instrumentSeed, uint256 amount, bool makerBuys) external step {
        uint256 k = 1 + seedA % 2;
        for (uint256 r; r < k; ++r) {
            uint256 mi = (seedA >> (8 * r + 1)) % TRADERS;
            uint256 ti = (seedB >> (8 * r)) % TRADERS;
            if (mi == ti) ti = (ti + 1) % TRADERS;
            uint256 k_ = (instrumentSeed >> (8 * r)) % live.length;
            uint256 id = live[k_];
            uint256 size;
            if ((seedB >> 200) % 2 == 0) {
                // up to 5 perpetuals, 20 options, 100 dust contracts: notionals of a few thousand
                size = 1e17 + (amount >> (16 * r)) % (k_ == 0 ? 5e18 : k_ < 3 ? 20e18 : 100e18);
            } else {
                // levered: half to all of what both sides' free margin allows (IM is 20%)
                size = _levered(accounts[mi], accounts[ti], id, 50 + (amount >> (16 * r)) % 51);
                if (size == 0) continue;
            }
            _fill(mi, ti, id, size, r == 0 ? makerBuys : !makerBuys);
        }
    }

    /// @dev The size that uses `pct`% of the smaller free margin (equity − IM) of two accounts.
    function _levered(address a, address b, uint256 id, uint256 pct) internal view returns (uint256) {
        int256 freeA = _equity(a) - int256(_gross(a) / 5);
        int256 freeB = _equity(b) - int256(_gross(b) / 5);
        int256 free = freeA < freeB ? freeA : freeB;
        if (free <= 0) return 0;
        return uint256(free) * 5 * pct / 100 * WAD / mark[id];
    }

    /// A trader pads its book with one-wei legs of up to three dust perpetuals.
    function padDust(uint256 seed) external step {
        uint256 ti = seed % TRADERS;
        uint256 mi = (ti + 1 + (seed >> 8) % (TRADERS - 1)) % TRADERS;
        for (uint256 r; r < 1 + (seed >> 16) % 3; ++r) {
            uint256 id = live[3 + ((seed >> (24 + 8 * r)) % (live.length - 3))];
            _fill(mi, ti, id, 1, false);
        }
    }

    /// −15% … +10% on one instrument (the perpetual half the time); one time in four a gap of
    /// −20% … −35%.
    function movePrice(uint256 instrumentSeed, uint256 pctSeed) external step {
        uint256 id = instrumentSeed % 2 == 0 ? perpId : live[(instrumentSeed >> 1) % live.length];
        uint256 pct = (pctSeed >> 8) % 4 == 0 ? 65 + pctSeed % 16 : 85 + pctSeed % 26;
        mark[id] = mark[id] * pct / 100 + 1e18;
    }

    /// +2% … +25% on one instrument: prices come back up.
    function recoverPrice(uint256 instrumentSeed, uint256 pctSeed) external step {
        uint256 id = live[instrumentSeed % live.length];
        mark[id] = mark[id] * (102 + pctSeed % 24) / 100;
    }

    /// The keeper (holding inventory) liquidates an account; an empty-book liquidator is asked
    /// first, on a snapshot, whether it could have.
    function liquidate(uint256 accountSeed) external step {
        address a = accountSeed % 2 == 0 ? _weakest(false) : accounts[(accountSeed >> 1) % KEEPER];
        if (a == address(0) || ch.openInstruments(a).length == 0) return;
        if (_liquidatable(a)) _probe(a, accounts[PROBE]);
        if (_liquidateAs(a, keeper())) liquidations++;
    }

    /// A liquidator whose book is empty liquidates an account (and keeps what it took).
    function liquidateEmptyBook(uint256 accountSeed) external step {
        address l;
        for (uint256 i = LIQUIDATOR_0; i < PROBE; ++i) {
            if (ch.openInstruments(accounts[i]).length == 0) {
                l = accounts[i];
                break;
            }
        }
        address a = accountSeed % 2 == 0 ? _weakest(false) : accounts[(accountSeed >> 1) % KEEPER];
        if (l == address(0) || a == address(0) || ch.openInstruments(a).length == 0) return;
        if (_liquidateAs(a, l)) emptyBookLiquidations++;
    }

    /// Every account below MM (and within the fund's reach) is asked of an empty-book
    /// liquidator and of the keeper, on snapshots.
    function probeAll() external step {
        for (uint256 i; i < PROBE; ++i) {
            address a = accounts[i];
            if (!_liquidatable(a)) continue;
            _probe(a, accounts[PROBE]);
            if (i != KEEPER) _probe(a, keeper());
        }
    }

    /// Deleverages a bankrupt account against the opposite side, most levered first.
    function deleverage(uint256 accountSeed) external step {
        address a = accountSeed % 4 == 0 ? accounts[(accountSeed >> 2) % PROBE] : _weakest(true);
        if (a == address(0)) return;
        uint256[] memory ids = _sortedOpen(a);
        if (ids.length == 0) return;
        int256 equity = _equity(a);
        if (equity >= 0) return;
        uint256 fundBefore = fund.fundBalance();
        (AdlAttestation memory att, bytes memory sigs, AdlFill[] memory fills) = _adlPlan(a, ids);
        int256[] memory before = new int256[](fills.length);
        for (uint256 i; i < fills.length; ++i) {
            before[i] = _equity(fills[i].counterparty);
        }
        try engine.deleverage(att, sigs, fills) {
            deleveragings++;
            if (fundBefore >= uint256(-equity)) adlWhileFundCouldCover = true;
            for (uint256 i; i < fills.length; ++i) {
                int256 floor_ = before[i] < 0 ? before[i] : int256(0);
                // each position moves at the mark: a few wei of rounding at most
                if (_equity(fills[i].counterparty) + 10 < floor_) adlCounterpartyBelowZero = true;
            }
        } catch (bytes memory err) {
            _noteRevert(err);
        }
    }

    /// Flags an account (a bankrupt one half the time).
    function flag(uint256 accountSeed) external step {
        address a = accountSeed % 2 == 0 ? _weakest(true) : accounts[(accountSeed >> 1) % PROBE];
        if (a == address(0)) return;
        int256 equity = _equity(a);
        bool beyond = equity < 0 && uint256(-equity) > fund.fundBalance();
        (MarginAttestation memory att, bytes memory sigs) = _attestNow(a);
        try engine.flagBankruptcy(a, att, sigs) {
            flagsSet++;
            if (!beyond) flaggedWithoutBadDebt = true;
        } catch (bytes memory err) {
            _noteRevert(err);
            if (beyond) {
                bankruptcyNotFlaggable = true;
                lastFailure = err;
            }
        }
    }

    /// Clears a flagged account, as anyone may.
    function clearFlag(uint256 accountSeed) external step {
        address a;
        for (uint256 i; i < PROBE; ++i) {
            address c = accounts[(accountSeed % PROBE + i) % PROBE];
            if (ch.flagged(c)) {
                a = c;
                break;
            }
        }
        if (a == address(0)) return;
        bool resolvable = _resolvable(a);
        (MarginAttestation memory att, bytes memory sigs) = _attestNow(a);
        vm.prank(accounts[(accountSeed >> 8) % ACCOUNTS]);
        try engine.clearFlag(a, att, sigs) {
            flagsCleared++;
            if (!resolvable) clearedWhileBeyondTheFund = true;
        } catch (bytes memory err) {
            _noteRevert(err);
            if (resolvable) {
                resolvableFlagStuck = true;
                lastFailure = err;
            }
        }
    }

    /// Time reaches the options' expiry: the price is posted and everyone settles.
    function settleExpiry(uint256 seed) external step {
        if (block.timestamp < expiry) vm.warp(uint256(expiry) + seed % 1 hours);
    }

    /// Anyone tops the insurance fund up (1 to 300).
    function fundInsurance(uint256 amount) external step {
        amount = 1e6 + amount % 300e6;
        usdc.mint(address(this), amount);
        usdc.approve(address(fund), amount);
        fund.deposit(amount);
    }

    /// Someone deposits into another account (a flagged one half the time), from 1 token unit.
    function depositFor(uint256 accountSeed, uint256 amount) external step {
        address to = accounts[accountSeed % PROBE];
        if (accountSeed % 2 == 0) {
            for (uint256 i; i < PROBE; ++i) {
                if (ch.flagged(accounts[i])) to = accounts[i];
            }
        }
        _deposit(to, 1 + amount % 5_000e6);
    }

    /// A trader withdraws against an attestation; never possible while withdrawals are gated.
    function withdraw(uint256 accountSeed, uint256 amount) external step {
        address a = accounts[accountSeed % TRADERS];
        (MarginAttestation memory att, bytes memory sigs) = _attestNow(a);
        bool gated = ch.withdrawalsGated();
        vm.prank(a);
        try ch.withdraw(1 + amount % 1_000e6, a, att, sigs) {
            if (gated) withdrawnWhileGated = true;
        } catch (bytes memory err) {
            _noteRevert(err);
        }
    }

    /// Governance, through the timelock (an outsider executes): half the time it moves the
    /// position cap (mostly down), half the time it moves to a new model version.
    function govern(uint256 seed) external step {
        RiskConfig memory c = ch.riskConfig();
        if (seed % 2 == 0) {
            uint8[8] memory caps = [uint8(1), 2, 4, 6, 8, 8, 16, 32];
            c.maxPositions = caps[(seed >> 1) % 8];
            _govern(c);
            return;
        }
        c.paramsVersion = version + 1;
        _govern(c);
        previousVersion = version;
        version = c.paramsVersion;
        versionChangedAt = uint64(block.timestamp);
    }

    /// Up to five minutes pass (grace windows close, snapshots age).
    function passTime(uint256 seconds_) external step {
        vm.warp(block.timestamp + 1 + seconds_ % 300);
    }

    // ------------------------------------------------------------------ liquidation

    /// @dev Whether `a` should be liquidatable now: below MM and, when it would be taken whole at
    ///      a loss, within the fund's reach.
    function _liquidatable(address a) internal view returns (bool) {
        if (ch.openInstruments(a).length == 0) return false;
        int256 equity = _equity(a);
        uint256 mm = _mm(a);
        if (equity >= int256(mm)) return false;
        return equity >= 0 || uint256(-equity) <= fund.fundBalance();
    }

    function _tryLiquidate(address a, address l) internal returns (bool ok, bytes memory err) {
        LiquidationRequest[] memory reqs = new LiquidationRequest[](1);
        uint256 mm = _mm(a);
        MarginAttestation memory att = _attest(a, ch.stateHashOf(a), _value(a), mm * 5 / 4, mm);
        reqs[0] = LiquidationRequest(a, att, _sign(ch.marginAttestationDigest(att)), WAD);
        (MarginAttestation memory latt, bytes memory lsigs) = _attestNow(l);
        vm.prank(l);
        try engine.liquidate(reqs, latt, lsigs) {
            ok = true;
        } catch (bytes memory e) {
            err = e;
        }
    }

    /// @dev On a snapshot: can `l` liquidate `a`? A refusal is a breach.
    function _probe(address a, address l) internal {
        uint256 snap = vm.snapshotState();
        (bool ok, bytes memory err) = _tryLiquidate(a, l);
        vm.revertToStateAndDelete(snap);
        probes++;
        if (!ok) {
            if (l == accounts[PROBE]) emptyBookRefused = true;
            else keeperRefused = true;
            lastFailure = err;
        }
    }

    struct Expected {
        int256 equity;
        uint256 mm;
        int256 value;
        uint256 fraction;
        bool liquidatable;
        int256 rounding; // Σ over the victim's positions of (mark in wei + 1), plus a few wei
    }

    /// @dev Liquidates `a` as `l` for real and checks what the waterfall promised.
    function _liquidateAs(address a, address l) internal returns (bool ok) {
        if (a == l) return false;
        Expected memory x;
        x.equity = _equity(a);
        x.mm = _mm(a);
        x.value = _value(a);
        x.liquidatable = _liquidatable(a);
        x.rounding = 10;
        for (uint256 i; i < live.length; ++i) {
            if (ch.positionOf(a, live[i]) != 0) x.rounding += int256(mark[live[i]] / WAD + 1);
        }
        if (x.equity < int256(x.mm)) (x.fraction,,) = engine.liquidationTerms(x.equity, x.mm);
        uint256 fundBefore = fund.fundBalance();
        int256 lCash = ch.cashOf(l);
        bytes memory err;
        (ok, err) = _tryLiquidate(a, l);
        if (!ok) {
            _noteRevert(err);
            if (x.liquidatable) {
                if (l == keeper()) keeperRefused = true;
                else emptyBookRefused = true;
                lastFailure = err;
            }
            return false;
        }
        _checkLiquidation(a, l, x, fundBefore, lCash);
    }

    function _checkLiquidation(address a, address l, Expected memory x, uint256 fundBefore, int256 lCash) internal {
        if (x.equity >= int256(x.mm)) healthyLiquidated = true;
        uint256 fundAfter = fund.fundBalance();
        int256 sliceValue = x.fraction == WAD ? x.value : _mulFloor(x.value, x.fraction);
        // the liquidator paid sliceValue − bonus for the slice
        int256 bonus = ch.cashOf(l) - lCash + sliceValue;
        if (bonus > (x.equity > 0 ? x.equity : int256(0))) fundPaidBonus = true;
        if (x.equity <= 0) {
            // the fund pays the deficit, rounded up to whole token units, and nothing else
            uint256 deficit = uint256(-x.equity);
            uint256 expected = (deficit + 1e12 - 1) / 1e12 * 1e12;
            if (fundAfter > fundBefore || fundBefore - fundAfter != expected) fundPaidBonus = true;
        } else {
            if (fundAfter < fundBefore) fundPaidBonus = true;
            if (x.fraction == WAD && ch.cashOf(a) < 0) fundPaidBonus = true;
        }
        if (x.fraction < WAD) {
            // each slice is rounded up to the wei of contracts: the victim gives up to one wei of
            // contract more per position than the fraction, worth up to its mark in wei
            int256 after_ = ch.cashOf(a) + _value(a);
            if (after_ + x.rounding < int256(_mm(a) * 11 / 10)) targetMissed = true;
        }
    }

    // ------------------------------------------------------------------ flags

    /// @dev What clearFlag must accept: with positions, equity ≥ 0 (a deficit the fund can cover is
    ///      resolved by a whole liquidation through the fund, which the probes check); without,
    ///      cash ≥ 0 or a deficit the fund pays at once.
    function _resolvable(address a) internal view returns (bool) {
        int256 equity = _equity(a);
        if (equity >= 0) return true;
        return ch.openInstruments(a).length == 0 && uint256(-equity) <= fund.fundBalance();
    }

    /// @dev Every flagged account that is no longer bankrupt beyond the fund must be clearable
    ///      by anyone: tried on a snapshot.
    function _sweepFlags() internal {
        if (ch.flaggedCount() == 0) return;
        for (uint256 i; i < PROBE; ++i) {
            address a = accounts[i];
            if (!ch.flagged(a) || !_resolvable(a)) continue;
            uint256 snap = vm.snapshotState();
            (MarginAttestation memory att, bytes memory sigs) = _attestNow(a);
            bool ok;
            bytes memory err;
            vm.prank(address(0xC1EA4));
            try engine.clearFlag(a, att, sigs) {
                ok = true;
            } catch (bytes memory e) {
                err = e;
            }
            vm.revertToStateAndDelete(snap);
            if (!ok) {
                resolvableFlagStuck = true;
                lastFailure = err;
            }
        }
    }

    // ------------------------------------------------------------------ settlement

    function _listOptions(uint256 spot) internal {
        uint256 strike = spot / 100e18 * 100e18;
        if (strike == 0) strike = 100e18;
        expiry = uint64(block.timestamp + 7 days);
        vm.startPrank(owner);
        uint256 callId = ch.listInstrument(ETH, InstrumentKind.Call, strike, expiry);
        uint256 putId = ch.listInstrument(ETH, InstrumentKind.Put, strike, expiry);
        vm.stopPrank();
        live[1] = callId;
        live[2] = putId;
        all.push(callId);
        all.push(putId);
        mark[callId] = 200e18;
        mark[putId] = 200e18;
    }

    /// @dev At or after the expiry: posts the oracle's price of the market at the expiry (the
    ///      perpetual's mark, read up to maxSnapshotAge before it), settles the payers and then
    ///      the longs (each account in one call, or its shorts first and its longs later), and
    ///      lists the next expiry.
    function _settleIfExpired(uint256 seed) internal {
        if (block.timestamp < expiry) return;
        uint256 price = mark[perpId];
        uint64 maxAge = ch.riskConfig().maxSnapshotAge;
        SettlementPrice memory sp = SettlementPrice(ETH, expiry, price, expiry - uint64(seed % maxAge));
        if (ch.settlementPrices(ETH, expiry) == 0) {
            ch.postSettlementPrice(sp, _sign(ch.settlementPriceDigest(sp)));
        }
        uint256[] memory ids = new uint256[](2);
        ids[0] = live[1];
        ids[1] = live[2];
        for (uint256 pass; pass < 3; ++pass) {
            for (uint256 i; i < ACCOUNTS; ++i) {
                _settleAccount(accounts[i], ids, price, pass, (seed >> (8 + i)) % 2 == 1);
            }
        }
        for (uint256 i; i < ACCOUNTS; ++i) {
            if (ch.positionOf(accounts[i], ids[0]) != 0 || ch.positionOf(accounts[i], ids[1]) != 0) {
                settlementStuck = true;
            }
        }
        settlements++;
        _listOptions(price);
    }

    /// @dev Pass 0 settles the accounts that pay on some leg; later passes everyone left. With
    ///      `split`, pass 0 settles a payer's shorts alone and its longs come later (a deficit is
    ///      then found only when its last long settles: the fund's or flagged, never hidden).
    function _settleAccount(address a, uint256[] memory ids, uint256 price, uint256 pass, bool split) internal {
        int256 gross;
        bool pays;
        uint256 cuts;
        uint256[] memory sel = new uint256[](ids.length);
        uint256 n;
        for (uint256 j; j < ids.length; ++j) {
            int256 s = ch.positionOf(a, ids[j]);
            if (s == 0 || (split && pass == 0 && s > 0)) continue;
            sel[n++] = ids[j];
            uint256 intrinsic = _intrinsic(ids[j], price);
            if (s < 0) {
                uint256 paid = (uint256(-s) * intrinsic + WAD - 1) / WAD;
                gross -= int256(paid);
                if (paid != 0) pays = true;
            } else {
                gross += int256(uint256(s) * intrinsic / WAD);
                if (intrinsic != 0 && engine.settlementShortfall(ids[j]) != 0) cuts++;
            }
        }
        if (n == 0 || (pass == 0 && !pays)) return;
        assembly {
            mstore(sel, n)
        }
        try engine.settle(a, sel) {
            ghostGrossPayouts += gross;
            ghostShortfallCuts += cuts;
        } catch (bytes memory err) {
            _noteRevert(err);
        }
    }

    function _intrinsic(uint256 id, uint256 price) internal view returns (uint256) {
        uint256 strike = ch.instrument(id).strike;
        if (id == live[1]) return price > strike ? price - strike : 0;
        return strike > price ? strike - price : 0;
    }

    // ------------------------------------------------------------------ governance

    function _govern(RiskConfig memory c) internal {
        vm.prank(owner);
        ch.scheduleRiskConfig(c, keccak256(abi.encode(c)));
        vm.warp(block.timestamp + timelock);
        vm.prank(address(0x0D751DE));
        ch.executeRiskConfig();
        configChanges++;
    }

    /// @dev The version the oracle signs under: during the grace window after a change, the
    ///      previous one every other time (both must be accepted).
    function _version() internal returns (uint32) {
        if (
            previousVersion != 0 && block.timestamp <= uint256(versionChangedAt) + ch.riskConfig().maxSnapshotAge
                && (++nonce & 1) == 1
        ) return previousVersion;
        return version;
    }

    function _noteRevert(bytes memory err) internal {
        if (err.length >= 4 && bytes4(err) == IClearinghouse.WrongParamsVersion.selector) {
            previousVersionRefused = true;
            lastFailure = err;
        }
    }

    // ------------------------------------------------------------------ trading

    function _fill(uint256 mi, uint256 ti, uint256 id, uint256 size, bool makerBuys) internal {
        address maker = accounts[mi];
        address taker = accounts[ti];
        int256 delta = makerBuys ? int256(size) : -int256(size);
        Order memory o = Order(maker, id, delta, mark[id], ++nonce, uint64(block.timestamp + 100));
        MarginAttestation memory ma = _attestAfter(maker, id, delta);
        MarginAttestation memory ta = _attestAfter(taker, id, -delta);
        bytes memory makerSig = _signWith(keys[mi], ch.orderDigest(o));
        bytes memory maSigs = _sign(ch.marginAttestationDigest(ma));
        bytes memory taSigs = _sign(ch.marginAttestationDigest(ta));
        vm.prank(taker);
        try ch.fillOrder(o, makerSig, size, ma, maSigs, ta, taSigs) {
            trades++;
        } catch (bytes memory err) {
            _noteRevert(err);
        }
    }

    function _attestAfter(address a, uint256 id, int256 delta) internal returns (MarginAttestation memory) {
        int256 cur = ch.positionOf(a, id);
        int256 next = cur + delta;
        uint256 gross = _gross(a) - _abs(cur) * mark[id] / WAD + _abs(next) * mark[id] / WAD;
        int256 value = _value(a) - _mulFloor(cur, mark[id]) + _mulFloor(next, mark[id]);
        return _attest(a, ch.nextStateHash(a, id, next), value, gross / 5, gross * 16 / 100);
    }

    // ------------------------------------------------------------------ deleveraging

    function _adlPlan(address a, uint256[] memory ids)
        internal
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
            a, ch.stateHashOf(a), ids, marks, roots, uint64(block.timestamp), uint64(block.timestamp + 60), _version()
        );
        sigs = _sign(keccak256(abi.encodePacked("\x19\x01", ch.domainSeparator(), engine.hashAdlAttestation(att))));
    }

    /// @dev The opposite side of one leg, most levered first (gross notional over equity; the
    ///      already bankrupt first of all), each leaf committing to the member's value at the marks.
    struct Queue {
        address[] ranked;
        bytes32[] hashes;
        int256[] values;
        bytes32[] leaves;
    }

    function _legQueue(address a, uint256 id, uint256 leg)
        internal
        view
        returns (bytes32 root, AdlFill[] memory fills)
    {
        Queue memory q;
        uint256 m;
        (q.ranked, m) = _ranked(a, id);
        q.leaves = new bytes32[](m);
        q.hashes = new bytes32[](m);
        q.values = new int256[](m);
        for (uint256 r; r < m; ++r) {
            q.hashes[r] = ch.stateHashOf(q.ranked[r]);
            q.values[r] = _value(q.ranked[r]);
            q.leaves[r] = MerkleBuilder.leaf(id, r, q.ranked[r], q.hashes[r], q.values[r]);
        }
        root = MerkleBuilder.root(q.leaves);
        m = _membersNeeded(q.ranked, m, id, _abs(ch.positionOf(a, id)));
        fills = new AdlFill[](m);
        for (uint256 r; r < m; ++r) {
            fills[r] = AdlFill(leg, q.ranked[r], r, q.hashes[r], q.values[r], MerkleBuilder.proof(q.leaves, r));
        }
    }

    function _ranked(address a, uint256 id) internal view returns (address[] memory ranked, uint256 m) {
        int256 size = ch.positionOf(a, id);
        ranked = new address[](ACCOUNTS);
        uint256[] memory score = new uint256[](ACCOUNTS);
        for (uint256 i; i < PROBE; ++i) {
            address c = accounts[i];
            int256 theirs = ch.positionOf(c, id);
            if (c == a || theirs == 0 || (theirs > 0) == (size > 0)) continue;
            int256 e = _equity(c);
            uint256 s = e > 0 ? _gross(c) * WAD / uint256(e) : type(uint256).max;
            uint256 j = m++;
            for (; j > 0 && score[j - 1] < s; --j) {
                (ranked[j], score[j]) = (ranked[j - 1], score[j - 1]);
            }
            (ranked[j], score[j]) = (c, s);
        }
        if (m == 0) ranked[m++] = a; // an empty queue: the deleveraging cannot complete
    }

    function _membersNeeded(address[] memory ranked, uint256 m, uint256 id, uint256 remaining)
        internal
        view
        returns (uint256 used)
    {
        while (used < m && remaining > 0) {
            uint256 theirs = _abs(ch.positionOf(ranked[used], id));
            remaining = theirs >= remaining ? 0 : remaining - theirs;
            ++used;
        }
    }

    // ------------------------------------------------------------------ model

    /// @dev Over the live instruments only: a settled expiry leaves no position behind (checked).
    function _value(address a) internal view returns (int256 v) {
        for (uint256 i; i < live.length; ++i) {
            v += _mulFloor(ch.positionOf(a, live[i]), mark[live[i]]);
        }
    }

    function _gross(address a) internal view returns (uint256 g) {
        for (uint256 i; i < live.length; ++i) {
            g += _abs(ch.positionOf(a, live[i])) * mark[live[i]] / WAD;
        }
    }

    function _mm(address a) internal view returns (uint256) {
        return _gross(a) * 16 / 100;
    }

    function _equity(address a) internal view returns (int256) {
        return ch.cashOf(a) + _value(a);
    }

    /// @dev The lowest equity − MM among accounts with positions (bankrupt only: lowest equity < 0).
    function _weakest(bool bankruptOnly) internal view returns (address weakest) {
        int256 lowest = type(int256).max;
        for (uint256 i; i < PROBE; ++i) {
            address a = accounts[i];
            if (ch.openInstruments(a).length == 0) continue;
            int256 equity = _equity(a);
            if (bankruptOnly && equity >= 0) continue;
            int256 score = bankruptOnly ? equity : equity - int256(_mm(a));
            if (score < lowest) (lowest, weakest) = (score, a);
        }
    }

    function _sortedOpen(address a) internal view returns (uint256[] memory ids) {
        ids = ch.openInstruments(a);
        for (uint256 i = 1; i < ids.length; ++i) {
            for (uint256 j = i; j > 0 && ids[j - 1] > ids[j]; --j) {
                (ids[j - 1], ids[j]) = (ids[j], ids[j - 1]);
            }
        }
    }

    // ------------------------------------------------------------------ internals

    function _attestNow(address a) internal returns (MarginAttestation memory att, bytes memory sigs) {
        uint256 gross = _gross(a);
        att = _attest(a, ch.stateHashOf(a), _value(a), gross / 5, gross * 16 / 100);
        sigs = _sign(ch.marginAttestationDigest(att));
    }

    function _attest(address a, bytes32 h, int256 value, uint256 im, uint256 mm)
        internal
        returns (MarginAttestation memory)
    {
        return MarginAttestation(a, h, value, im, mm, uint64(block.timestamp), uint64(block.timestamp + 60), _version());
    }

    function _deposit(address a, uint256 amount) internal {
        usdc.mint(address(this), amount);
        usdc.approve(address(ch), amount);
        ch.deposit(a, amount);
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

    function _abs(int256 x) internal pure returns (uint256) {
        return uint256(x >= 0 ? x : -x);
    }

    /// @dev x × y / WAD rounded toward −∞.
    function _mulFloor(int256 x, uint256 y) internal pure returns (int256) {
        if (x >= 0) return int256(uint256(x) * y / WAD);
        return -int256((uint256(-x) * y + WAD - 1) / WAD);
    }
}

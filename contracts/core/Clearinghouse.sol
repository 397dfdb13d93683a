// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Metadata} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Metadata.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {ReentrancyGuardTransient} from "@openzeppelin/contracts/utils/ReentrancyGuardTransient.sol";

import {
    IClearinghouse,
    Instrument,
    InstrumentKind,
    MarginAttestation,
    Order,
    RiskConfig,
    SettlementPrice,
    SnapshotHeartbeat
} from "../interfaces/IClearinghouse.sol";
import {IClearinghouseEngineHooks} from "../interfaces/IClearinghouseEngineHooks.sol";
import {IInsuranceFund} from "../interfaces/IInsuranceFund.sol";
import {AttestationHashing} from "../libraries/AttestationHashing.sol";
import {FixedPoint, WAD} from "../libraries/FixedPoint.sol";
import {PositionBook} from "../libraries/PositionBook.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {AttestationVerifier} from "../base/AttestationVerifier.sol";
import {RiskGovernance} from "../base/RiskGovernance.sol";

/// @title Clearinghouse
/// @notice The ledger: collateral, instruments, positions and trades. The contract never prices
///         anything; every risk decision compares on-chain cash with a threshold-signed oracle
///         attestation bound to the account's exact portfolio state.
/// @dev Portfolio state commitment: each account carries `stateHash`, extended on every position
///      update as keccak256(abi.encode(stateHash, instrumentId, newSize)). An attestation names
///      the state hash it describes, so one made for another portfolio — before a trade, after a
///      different trade, for another account — can never be applied.
contract Clearinghouse is IClearinghouseEngineHooks, AttestationVerifier, ReentrancyGuardTransient {
    using SafeERC20 for IERC20;
    using FixedPoint for uint256;
    using PositionBook for PositionBook.Book;
    using SafeCast for int256;

    // ============================================================================ Storage

    /// @dev cash and the open-position count share a slot: both change on most actions.
    struct Account {
        int248 cash;
        uint8 openCount;
        bytes32 stateHash;
    }

    IERC20 public immutable collateral;
    uint8 public immutable collateralDecimals;

    mapping(address => Account) internal _accounts;
    mapping(address => PositionBook.Book) internal _books;

    mapping(uint256 => Instrument) internal _instruments;
    uint256 public instrumentCount;

    /// @notice Contracts of an order filled so far (absolute), or type(uint256).max once cancelled.
    mapping(bytes32 => uint256) public filled;
    mapping(address => uint256) public minNonce;

    /// @notice Settlement price (WAD) per underlying and expiry; 0 until posted.
    mapping(bytes32 => mapping(uint64 => uint256)) public settlementPrices;

    /// @notice Σ cash over all accounts (signed, WAD).
    int256 public totalCash;
    /// @notice Trading fees held for the protocol (WAD).
    uint256 public protocolFees;
    /// @notice Net settlement cash credited so far: zero once every holder of an expiry has settled
    ///         (payouts are zero-sum across holders, settled one at a time; a payer's shortfall is
    ///         credited first and recovered from the winners' payouts).
    int256 public netSettlementPayouts;
    /// @notice Accounts with unresolved bad debt, flagged by the waterfall engines. Kept here, not
    ///         in an engine, so an engine swap neither strands a flag nor lifts the gate over one.
    mapping(address => bool) public flagged;
    /// @notice The number of flagged accounts: withdrawals are gated while it is not zero.
    uint256 public flaggedCount;
    /// @notice Set by the first deposit; from then on engines change only through the timelock.
    bool public isSealed;
    /// @notice The insurance fund: the only wallet engines may pull collateral from, and the
    ///         payer of settlement deficits. Set once, during set-up.
    IInsuranceFund public insuranceFund;

    /// @notice Σ |size| of the short positions of each instrument (= Σ of the long ones until the
    ///         instrument's shorts start settling).
    mapping(uint256 => uint256) public shortOpenInterest;

    // ============================================================================ Construction

    constructor(
        IERC20 collateral_,
        address owner_,
        address guardian_,
        uint256 timelockDelay_,
        RiskConfig memory config_,
        bytes32 paramsHash_,
        address[] memory signers_,
        uint8 threshold_
    ) RiskGovernance(owner_, guardian_, timelockDelay_, config_, paramsHash_, signers_, threshold_) {
        if (address(collateral_) == address(0)) revert ZeroAddress();
        uint8 decimals = IERC20Metadata(address(collateral_)).decimals();
        // ≤ 18 keeps token ↔ WAD conversion exact in both directions.
        if (decimals > 18) revert TokenDecimalsUnsupported(decimals);
        collateral = collateral_;
        collateralDecimals = decimals;
    }

    // ============================================================================ Collateral

    /// @inheritdoc IClearinghouse
    function deposit(address account, uint256 tokenAmount) external nonReentrant {
        if (tokenAmount == 0) revert ZeroAmount();
        if (account == address(0)) revert ZeroAddress();
        uint256 before = collateral.balanceOf(address(this));
        collateral.safeTransferFrom(msg.sender, address(this), tokenAmount);
        uint256 received = collateral.balanceOf(address(this)) - before;
        if (received != tokenAmount) revert TransferAmountMismatch(tokenAmount, received);
        uint256 amount = FixedPoint.toWad(tokenAmount, collateralDecimals);
        if (!isSealed) isSealed = true;
        _addCash(account, int256(amount));
        emit Deposited(account, msg.sender, tokenAmount, amount);
    }

    /// @inheritdoc IClearinghouse
    function withdraw(uint256 tokenAmount, address to, MarginAttestation calldata att, bytes calldata sigs)
        external
        nonReentrant
    {
        if (withdrawalsPaused) revert WithdrawalsPaused();
        if (flaggedCount != 0) revert WithdrawalsGatedByBadDebt();
        if (tokenAmount == 0) revert ZeroAmount();
        if (to == address(0)) revert ZeroAddress();
        uint256 amount = FixedPoint.toWad(tokenAmount, collateralDecimals);
        Account storage acct = _accounts[msg.sender];
        int256 cashAfter = acct.cash - int256(amount);
        if (acct.openCount == 0) {
            if (cashAfter < 0) revert InsufficientCash(acct.cash, amount);
        } else {
            int256 equityAfter = _verifiedEquity(msg.sender, att, sigs) - int256(amount);
            if (equityAfter < int256(att.initialMargin)) revert InsufficientEquity(equityAfter, att.initialMargin);
        }
        _addCash(msg.sender, -int256(amount));
        collateral.safeTransfer(to, tokenAmount);
        emit Withdrawn(msg.sender, to, tokenAmount, amount);
    }

    // ============================================================================ Instruments

    /// @notice Lists a new instrument. Options need a strike and a future expiry; perpetuals neither.
    function listInstrument(bytes32 underlying, InstrumentKind kind, uint256 strike, uint64 expiry)
        external
        onlyOwner
        returns (uint256 instrumentId)
    {
        if (underlying == bytes32(0)) revert InvalidInstrument();
        if (kind == InstrumentKind.Perpetual) {
            if (strike != 0 || expiry != 0) revert InvalidInstrument();
        } else if (strike == 0 || expiry <= block.timestamp) {
            revert InvalidInstrument();
        }
        instrumentId = ++instrumentCount;
        if (instrumentId > type(uint32).max) revert InvalidInstrument(); // ids are packed as uint32
        _instruments[instrumentId] = Instrument(underlying, kind, expiry, strike);
        emit InstrumentListed(instrumentId, underlying, kind, strike, expiry);
    }

    /// @inheritdoc IClearinghouse
    function instrument(uint256 instrumentId) external view returns (Instrument memory) {
        return _instrument(instrumentId);
    }

    // ============================================================================ Trading

    /// @inheritdoc IClearinghouse
    function fillOrder(
        Order calldata order,
        bytes calldata makerSignature,
        uint256 fillAmount,
        MarginAttestation calldata makerAtt,
        bytes calldata makerSigs,
        MarginAttestation calldata takerAtt,
        bytes calldata takerSigs
    ) external nonReentrant {
        if (tradingPaused) revert TradingPaused();
        if (order.maker == msg.sender) revert SelfTrade();
        _applyFill(order, fillAmount, _checkOrder(order, makerSignature, fillAmount));
        // Both sides must meet IM on their post-trade portfolios.
        _requireInitialMargin(order.maker, makerAtt, makerSigs);
        _requireInitialMargin(msg.sender, takerAtt, takerSigs);
    }

    /// @inheritdoc IClearinghouse
    function cancelOrder(Order calldata order) external {
        if (order.maker != msg.sender) revert NotOrderMaker();
        bytes32 orderHash = _hashTypedDataV4(AttestationHashing.hash(order));
        filled[orderHash] = type(uint256).max;
        emit OrderCancelled(orderHash, msg.sender);
    }

    /// @inheritdoc IClearinghouse
    function raiseMinNonce(uint256 newMinNonce) external {
        if (newMinNonce <= minNonce[msg.sender]) revert MinNonceNotIncreasing();
        minNonce[msg.sender] = newMinNonce;
        emit MinNonceRaised(msg.sender, newMinNonce);
    }

    // ============================================================================ Settlement

    /// @inheritdoc IClearinghouse
    function postSettlementPrice(SettlementPrice calldata price, bytes calldata sigs) external {
        if (price.expiry > block.timestamp) revert NotExpired(price.expiry);
        if (price.price == 0) revert ZeroAmount();
        // The price of the market at the expiry, not one picked from the path after it.
        if (price.snapshotTime > price.expiry || uint256(price.snapshotTime) + _config.maxSnapshotAge < price.expiry) {
            revert SettlementPriceNotAtExpiry(price.snapshotTime, price.expiry);
        }
        if (settlementPrices[price.underlying][price.expiry] != 0) revert SettlementPriceAlreadySet();
        _verifySignatures(_hashTypedDataV4(AttestationHashing.hash(price)), sigs);
        settlementPrices[price.underlying][price.expiry] = price.price;
        emit SettlementPricePosted(price.underlying, price.expiry, price.price);
    }

    // ============================================================================ Snapshots

    /// @inheritdoc IClearinghouse
    function postSnapshot(SnapshotHeartbeat calldata heartbeat, bytes calldata sigs) external {
        if (heartbeat.snapshotTime > block.timestamp) revert SnapshotInFuture(heartbeat.snapshotTime);
        _verifySignatures(_hashTypedDataV4(AttestationHashing.hash(heartbeat)), sigs);
        if (heartbeat.snapshotTime > latestSnapshotTime) latestSnapshotTime = heartbeat.snapshotTime;
        emit SnapshotPosted(heartbeat.snapshotTime);
    }

    // ============================================================================ Fees

    function withdrawFees(address to, uint256 amount) external onlyOwner nonReentrant {
        if (to == address(0)) revert ZeroAddress();
        if (amount > protocolFees) revert InsufficientCash(int256(protocolFees), amount);
        protocolFees -= amount;
        collateral.safeTransfer(to, FixedPoint.fromWadDown(amount, collateralDecimals));
        emit FeesWithdrawn(to, amount);
    }

    // ============================================================================ Engine hooks

    /// @notice Names the insurance fund, once, during set-up (before any deposit).
    function bootstrapInsuranceFund(IInsuranceFund fund) external onlyOwner {
        if (isSealed) revert AlreadySealed();
        if (address(fund) == address(0)) revert ZeroAddress();
        if (address(insuranceFund) != address(0)) revert AlreadySealed();
        insuranceFund = fund;
    }

    /// @notice Enables an engine without the timelock, only during set-up (before any deposit):
    ///         the engine and this contract each need the other's address.
    function bootstrapEngine(address engine) external onlyOwner {
        if (isSealed) revert AlreadySealed();
        if (engine == address(0)) revert ZeroAddress();
        isEngine[engine] = true;
        emit EngineUpdated(engine, true);
    }

    modifier onlyEngine() {
        if (!isEngine[msg.sender]) revert NotEngine();
        _;
    }

    /// @inheritdoc IClearinghouseEngineHooks
    function verifyMarginAttestation(address account, MarginAttestation calldata att, bytes calldata sigs)
        external
        onlyEngine
        returns (int256 equity)
    {
        return _verifiedEquity(account, att, sigs);
    }

    /// @inheritdoc IClearinghouseEngineHooks
    function verifyOracleSignatures(bytes32 structHash, uint64 snapshotTime, uint64 deadline, bytes calldata sigs)
        external
        onlyEngine
    {
        _checkFresh(snapshotTime, deadline);
        _verifySignatures(_hashTypedDataV4(structHash), sigs);
    }

    /// @inheritdoc IClearinghouseEngineHooks
    /// @dev Receipts are exempt from `maxPositions` (up to the storage bound): a configuration
    ///      change or a padded book must never leave a position nobody can take.
    function engineMovePosition(address from, address to, uint256 instrumentId, int256 amount) external onlyEngine {
        _requireLive(_instruments[instrumentId], instrumentId);
        _changePosition(from, instrumentId, -amount, PositionBook.MAX_POSITIONS);
        _changePosition(to, instrumentId, amount, PositionBook.MAX_POSITIONS);
    }

    /// @inheritdoc IClearinghouseEngineHooks
    /// @dev Each slice is the smallest that is at least the fraction. Positions are visited in
    ///      `from`'s open-list order (the `instrumentIds` of the event); each update extends both
    ///      state-hash chains exactly as a single update would.
    function engineTransferSlice(address from, address to, uint256 fraction) external onlyEngine {
        Account storage a = _accounts[from];
        Account storage b = _accounts[to];
        uint256[] memory ids = _books[from].ids(a.openCount);
        Transfer memory t = Transfer(from, to, fraction, a.openCount, b.openCount, a.stateHash, b.stateHash);
        for (uint256 i; i < ids.length; ++i) {
            _transferOne(t, ids[i]);
        }
        a.openCount = uint8(t.countFrom);
        a.stateHash = t.hashFrom;
        b.openCount = uint8(t.countTo);
        b.stateHash = t.hashTo;
        // One event for the whole slice (not one per position): the sizes follow from the
        // fraction and the rounding rule, and the two hashes confirm the replay.
        emit PortfolioSliceTransferred(from, to, fraction, ids, t.hashFrom, t.hashTo);
    }

    /// @inheritdoc IClearinghouseEngineHooks
    function engineMoveCash(address from, address to, int256 amount) external onlyEngine {
        _addCash(from, -amount);
        _addCash(to, amount);
    }

    /// @inheritdoc IClearinghouseEngineHooks
    /// @dev Pays whole token units, rounded down; debits exactly what was sent.
    function enginePayOut(address account, address to, uint256 amount)
        external
        onlyEngine
        nonReentrant
        returns (uint256 debited)
    {
        uint256 tokenAmount = FixedPoint.fromWadDown(amount, collateralDecimals);
        debited = FixedPoint.toWad(tokenAmount, collateralDecimals);
        if (tokenAmount == 0) return 0;
        _addCash(account, -int256(debited));
        collateral.safeTransfer(to, tokenAmount);
    }

    /// @inheritdoc IClearinghouseEngineHooks
    function enginePayIn(address account, uint256 tokenAmount)
        external
        onlyEngine
        nonReentrant
        returns (uint256 credited)
    {
        if (tokenAmount == 0) return 0;
        address fund = address(insuranceFund);
        if (fund == address(0)) revert NotInsuranceFund();
        collateral.safeTransferFrom(fund, address(this), tokenAmount);
        credited = FixedPoint.toWad(tokenAmount, collateralDecimals);
        _addCash(account, int256(credited));
    }

    /// @inheritdoc IClearinghouseEngineHooks
    function engineSettle(address account, uint256 instrumentId, int256 payout) external onlyEngine {
        int256 size = _books[account].sizeOf(instrumentId);
        _setPosition(account, instrumentId, 0, PositionBook.MAX_POSITIONS);
        engineCreditSettlement(account, payout);
        emit PositionSettled(account, instrumentId, size, payout);
    }

    /// @inheritdoc IClearinghouseEngineHooks
    function engineCreditSettlement(address account, int256 amount) public onlyEngine {
        if (amount == 0) return;
        _addCash(account, amount);
        netSettlementPayouts += amount;
    }

    /// @inheritdoc IClearinghouseEngineHooks
    function engineSetFlag(address account, bool on) external onlyEngine returns (bool changed) {
        if (flagged[account] == on) return false;
        flagged[account] = on;
        if (on) ++flaggedCount;
        else --flaggedCount;
        return true;
    }

    /// @inheritdoc IClearinghouse
    function withdrawalsGated() external view returns (bool) {
        return flaggedCount != 0;
    }

    // ============================================================================ Views

    /// @inheritdoc IClearinghouse
    function cashOf(address account) external view returns (int256) {
        return _accounts[account].cash;
    }

    /// @inheritdoc IClearinghouse
    function positionOf(address account, uint256 instrumentId) external view returns (int256) {
        return _books[account].sizeOf(instrumentId);
    }

    /// @inheritdoc IClearinghouse
    function openInstruments(address account) external view returns (uint256[] memory) {
        return _books[account].ids(_accounts[account].openCount);
    }

    /// @inheritdoc IClearinghouse
    function stateHashOf(address account) external view returns (bytes32) {
        return _accounts[account].stateHash;
    }

    // ============================================================================ Internal

    /// @dev An expired option never moves between accounts, only settles: settlement counts on its
    ///      short open interest and each long's share of a shortfall, which netting a long against
    ///      a short in a liquidation or ADL would bypass.
    function _requireLive(Instrument storage inst, uint256 instrumentId) internal view {
        if (inst.kind != InstrumentKind.Perpetual && inst.expiry <= block.timestamp) {
            revert InstrumentExpired(instrumentId);
        }
    }

    function _instrument(uint256 instrumentId) internal view returns (Instrument storage inst) {
        inst = _instruments[instrumentId];
        if (inst.underlying == bytes32(0)) revert UnknownInstrument(instrumentId);
    }

    function _checkOrder(Order calldata order, bytes calldata makerSignature, uint256 fillAmount)
        internal
        returns (bytes32 orderHash)
    {
        if (order.deadline < block.timestamp) revert OrderExpired();
        if (order.nonce < minNonce[order.maker]) revert OrderNoLongerValid();
        if (fillAmount == 0 || order.size == 0) revert InvalidFillAmount();
        orderHash = _hashTypedDataV4(AttestationHashing.hash(order));
        uint256 done = filled[orderHash];
        if (done == type(uint256).max) revert OrderNoLongerValid();
        uint256 total = order.size > 0 ? uint256(order.size) : uint256(-order.size);
        if (done + fillAmount > total) revert OrderOverfilled(total - done, fillAmount);
        // EOA signatures through ECDSA (malleability-checked); contract makers through ERC-1271.
        if (!SignatureChecker.isValidSignatureNow(order.maker, orderHash, makerSignature)) {
            revert InvalidOrderSignature();
        }
        filled[orderHash] = done + fillAmount;
    }

    /// @dev Moves positions (maker ±fillAmount, taker the opposite) and cash (the buyer pays the
    ///      seller fillAmount × price; the taker pays the fee into protocolFees).
    function _applyFill(Order calldata order, uint256 fillAmount, bytes32 orderHash) internal {
        _requireLive(_instrument(order.instrumentId), order.instrumentId);
        int256 makerDelta = order.size > 0 ? int256(fillAmount) : -int256(fillAmount);
        uint256 cap = _config.maxPositions;
        _changePosition(order.maker, order.instrumentId, makerDelta, cap);
        _changePosition(msg.sender, order.instrumentId, -makerDelta, cap);

        uint256 notional = fillAmount.mulWadUp(order.price);
        uint256 fee = notional.mulWadUp(_config.takerFee);
        int256 makerCash = makerDelta > 0 ? -int256(notional) : int256(notional);
        _addCash(order.maker, makerCash);
        _addCash(msg.sender, -makerCash - int256(fee));
        protocolFees += fee;
        emit OrderFilled(orderHash, order.maker, msg.sender, order.instrumentId, makerDelta, order.price, fee);
    }

    function _requireInitialMargin(address account, MarginAttestation calldata att, bytes calldata sigs) internal {
        int256 equity = _verifiedEquity(account, att, sigs);
        if (equity < int256(att.initialMargin)) revert InsufficientEquity(equity, att.initialMargin);
    }

    /// @dev Cash + attested value, once the attestation of the account's current state checks out.
    function _verifiedEquity(address account, MarginAttestation calldata att, bytes calldata sigs)
        internal
        returns (int256)
    {
        Account storage acct = _accounts[account];
        _verifyMargin(att, sigs, account, acct.stateHash);
        return acct.cash + att.value;
    }

    function _addCash(address account, int256 delta) internal {
        int256 cash = _accounts[account].cash + delta;
        _accounts[account].cash = cash.toInt248();
        totalCash += delta;
        emit CashUpdated(account, cash);
    }

    function _changePosition(address account, uint256 instrumentId, int256 delta, uint256 cap) internal {
        _setPosition(account, instrumentId, _books[account].sizeOf(instrumentId) + delta, cap);
    }

    /// @dev The one place single positions change: the open list, the position cap, the short
    ///      open interest and the state-hash chain (engineTransferSlice does the same for many).
    function _setPosition(address account, uint256 instrumentId, int256 newSize, uint256 cap) internal {
        int256 oldSize = _books[account].sizeOf(instrumentId);
        if (oldSize == newSize) return;
        _trackShort(instrumentId, oldSize, newSize);
        Account storage acct = _accounts[account];
        acct.openCount = uint8(_books[account].set(instrumentId, newSize, acct.openCount, cap));
        bytes32 stateHash = keccak256(abi.encode(acct.stateHash, instrumentId, newSize));
        acct.stateHash = stateHash;
        emit PositionUpdated(account, instrumentId, newSize, stateHash);
    }

    /// @dev Running state of a slice transfer: both accounts' counts and hash chains stay in
    ///      memory and are written once at the end.
    struct Transfer {
        address from;
        address to;
        uint256 fraction;
        uint256 countFrom;
        uint256 countTo;
        bytes32 hashFrom;
        bytes32 hashTo;
    }

    function _transferOne(Transfer memory t, uint256 id) internal {
        PositionBook.Book storage fromBook = _books[t.from];
        PositionBook.Book storage toBook = _books[t.to];
        _requireLive(_instruments[id], id);
        int256 size = fromBook.sizeOf(id);
        int256 slice = t.fraction >= WAD ? size : _sliceOf(size, t.fraction);
        int256 left = size - slice;
        _trackShort(id, size, left);
        // Receiving a slice is exempt from maxPositions (up to the storage bound), so neither a
        // padded book nor a lowered cap can make an account unliquidatable.
        t.countFrom = fromBook.set(id, left, t.countFrom, PositionBook.MAX_POSITIONS);
        t.hashFrom = keccak256(abi.encode(t.hashFrom, id, left));
        int256 held = toBook.sizeOf(id);
        int256 received = held + slice;
        _trackShort(id, held, received);
        t.countTo = toBook.set(id, received, t.countTo, PositionBook.MAX_POSITIONS);
        t.hashTo = keccak256(abi.encode(t.hashTo, id, received));
    }

    /// @dev Keeps `shortOpenInterest` equal to Σ |short sizes| through every position change.
    function _trackShort(uint256 instrumentId, int256 oldSize, int256 newSize) internal {
        uint256 before = oldSize < 0 ? uint256(-oldSize) : 0;
        uint256 after_ = newSize < 0 ? uint256(-newSize) : 0;
        if (after_ > before) shortOpenInterest[instrumentId] += after_ - before;
        else if (before > after_) shortOpenInterest[instrumentId] -= before - after_;
    }

    /// @dev size × fraction rounded away from zero, never beyond size.
    function _sliceOf(int256 size, uint256 fraction) internal pure returns (int256) {
        uint256 abs = uint256(size >= 0 ? size : -size);
        uint256 part = abs.mulWadUp(fraction);
        if (part > abs) part = abs;
        return size >= 0 ? int256(part) : -int256(part);
    }
}

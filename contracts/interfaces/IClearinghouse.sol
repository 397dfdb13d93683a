// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

/// @notice Instrument kinds; the numeric order is shared with the off-chain engine.
enum InstrumentKind {
    Perpetual,
    Call,
    Put
}

/// @notice A listed instrument. Underlyings are short ASCII names left-aligned in a bytes32
///         ("ETH" → 0x455448000…). Strikes are WAD; expiry is a unix time (0 for perpetuals).
struct Instrument {
    bytes32 underlying;
    InstrumentKind kind;
    uint64 expiry;
    uint256 strike;
}

/// @notice The oracle's signed statement about one account's portfolio, in WAD.
/// @dev Bound to: this chain and contract (EIP-712 domain), the account, the exact portfolio state
///      (`stateHash`, the account's position commitment after the action it is used for), a fresh
///      market snapshot (`snapshotTime`), an expiry (`deadline`) and the risk-model version.
struct MarginAttestation {
    address account;
    bytes32 stateHash;
    int256 value;
    uint256 initialMargin;
    uint256 maintenanceMargin;
    uint64 snapshotTime;
    uint64 deadline;
    uint32 paramsVersion;
}

/// @notice A maker's signed offer. `size` is signed from the maker's side (+ buys, − sells);
///         `price` is the WAD price per contract (the premium for options, the trade price for
///         perpetuals). A taker may fill any part of |size| until the deadline.
struct Order {
    address maker;
    uint256 instrumentId;
    int256 size;
    uint256 price;
    uint256 nonce;
    uint64 deadline;
}

/// @notice The oracle's signed settlement price of an underlying at an option expiry.
/// @dev `snapshotTime` is the time of the market reading the price comes from: the last feed
///      round at or before the expiry. The contract accepts it only within `maxSnapshotAge`
///      before the expiry, so nobody can pick a favourable price from after it.
struct SettlementPrice {
    bytes32 underlying;
    uint64 expiry;
    uint256 price;
    uint64 snapshotTime;
}

/// @notice The oracle's signed statement "my newest market data is from `snapshotTime`".
/// @dev Anyone may post one; it raises the freshness floor for every attestation without the
///      help of the accounts concerned, so an attestation hoarded from an older snapshot (a price
///      dip) stops being usable once newer data has been published.
struct SnapshotHeartbeat {
    uint64 snapshotTime;
}

/// @notice The oracle's threshold-signed commitment to every account's margin at one snapshot.
/// @dev `root` is the root of an OpenZeppelin StandardMerkleTree over one leaf per account with a
///      portfolio: leaf = keccak256(bytes.concat(keccak256(abi.encode(att)))) for that account's
///      MarginAttestation `att` (the eight fields in declaration order), leaves sorted by hash,
///      parents hashing their children in ascending order. Every leaf carries the commitment's
///      `snapshotTime`, `deadline` and `paramsVersion`; `accounts` is the number of leaves. Once
///      posted (ISnapshotCommitments), a leaf with its proof is accepted wherever a signed
///      MarginAttestation is: `sigs` whose length is a multiple of 65 are signatures, any other
///      length a proof.
struct SnapshotCommitment {
    bytes32 root;
    uint64 snapshotTime;
    uint64 deadline;
    uint32 paramsVersion;
    uint32 accounts;
}

/// @notice Risk parameters enforced on-chain. Every field has hard bounds (see the setter).
struct RiskConfig {
    uint32 paramsVersion; // version of the off-chain model attestations must carry
    uint32 maxSnapshotAge; // seconds an attested snapshot stays usable
    uint32 snapshotTolerance; // seconds a snapshot may trail the newest one already accepted
    uint8 maxPositions; // open positions a trade may leave (liquidation receipts are exempt, up to 64)
    uint64 takerFee; // WAD share of the traded premium/notional paid by the taker
    uint64 liquidationBuffer; // WAD: a liquidation restores equity to MM × (1 + buffer)
    uint64 liquidatorBonus; // WAD share of the transferred slice's |MM| paid to the liquidator
    uint64 insuranceFee; // WAD share of the transferred slice's |MM| paid to the insurance fund
    uint128 dustMargin; // WAD: below this MM a liquidation takes the whole portfolio
}

/// @title IClearinghouse
/// @notice Collateral, instruments, positions and bilateral trades, each risk-checked against
///         threshold-signed EIP-712 attestations from the off-chain risk oracle.
/// @dev Amounts: token units at the deposit/withdraw boundary, WAD (18 decimals) everywhere else.
///      Cash is signed: buying a perpetual moves its price out of cash and the position is valued
///      at the index, so equity = cash + attested value for every instrument kind.
interface IClearinghouse {
    // ============================================================================ Errors

    /// @notice Thrown when an amount that must be positive is zero (a deposit, a withdrawal, a
    ///         settlement price).
    error ZeroAmount();
    /// @notice Thrown when a required address (account, recipient, token, engine, fund) is zero.
    error ZeroAddress();
    /// @notice Thrown when the collateral token has more than 18 decimals.
    error TokenDecimalsUnsupported(uint8 decimals);
    /// @notice Thrown when the collateral token delivers another amount than requested (e.g. a
    ///         fee-on-transfer token).
    error TransferAmountMismatch(uint256 expected, uint256 received);
    /// @notice Thrown when a withdrawal without positions, or of protocol fees, exceeds the cash.
    error InsufficientCash(int256 cash, uint256 requested);
    /// @notice Thrown when an account's equity after a trade or withdrawal is below its attested
    ///         initial margin.
    error InsufficientEquity(int256 equity, uint256 required);
    /// @notice Thrown when an order is filled while the guardian has paused trading.
    error TradingPaused();
    /// @notice Thrown when a withdrawal is made while the guardian has paused withdrawals.
    error WithdrawalsPaused();
    /// @notice Thrown when a withdrawal is made while some account is flagged with unresolved bad
    ///         debt (`flaggedCount` is not zero).
    error WithdrawalsGatedByBadDebt();
    /// @notice Thrown when pausing is asked by neither the guardian nor the owner.
    error NotGuardian();
    /// @notice Thrown when a set-up step (naming an engine or the insurance fund) comes after the
    ///         first deposit, or the insurance fund is named a second time.
    error AlreadySealed();
    /// @notice Thrown when an instrument id was never listed.
    error UnknownInstrument(uint256 instrumentId);
    /// @notice Thrown when a listing is inconsistent (no underlying; a perpetual with a strike or
    ///         expiry; an option without a strike or with a past expiry) or the ids are exhausted.
    error InvalidInstrument();
    /// @notice Thrown when an expired option would be traded or moved between accounts: it only
    ///         settles.
    error InstrumentExpired(uint256 instrumentId);
    /// @notice Thrown when a position change would leave an account with more than `limit` open
    ///         positions.
    error TooManyPositions(uint256 limit);
    /// @notice Thrown when a position size does not fit in an int248.
    error PositionTooLarge();
    /// @notice Thrown when an order is filled after its deadline.
    error OrderExpired();
    /// @notice Thrown when an order was cancelled or its nonce is below the maker's minimum nonce.
    error OrderNoLongerValid();
    /// @notice Thrown when a fill exceeds what is left of the order.
    error OrderOverfilled(uint256 remaining, uint256 requested);
    /// @notice Thrown when the maker's signature (ECDSA, or ERC-1271 for a contract) does not sign
    ///         the order.
    error InvalidOrderSignature();
    /// @notice Thrown when the taker is the order's maker.
    error SelfTrade();
    /// @notice Thrown when the fill amount or the order's size is zero.
    error InvalidFillAmount();
    /// @notice Thrown when `raiseMinNonce` would not raise the caller's minimum nonce.
    error MinNonceNotIncreasing();
    /// @notice Thrown when an order is cancelled by someone other than its maker.
    error NotOrderMaker();
    // attestations
    /// @notice Thrown when an attestation is about another account than the one acted on.
    error WrongAccount(address expected, address attested);
    /// @notice Thrown when an attestation or ADL plan describes another portfolio state than the
    ///         account's current one.
    error WrongPortfolioState(bytes32 expected, bytes32 attested);
    /// @notice Thrown when an attestation carries a risk-model version that is not accepted now
    ///         (neither the current one nor the previous one within its grace window).
    error WrongParamsVersion(uint32 expected, uint32 attested);
    /// @notice Thrown when an attestation is used after its deadline.
    error AttestationExpired(uint64 deadline);
    /// @notice Thrown when a snapshot time lies after the current block's time.
    error SnapshotInFuture(uint64 snapshotTime);
    /// @notice Thrown when a snapshot is older than `maxSnapshotAge`, or trails the newest accepted
    ///         snapshot by more than `snapshotTolerance`.
    error SnapshotTooOld(uint64 snapshotTime, uint256 oldestAccepted);
    /// @notice Thrown when the signatures' length is not a multiple of 65 bytes.
    error MalformedSignatures();
    /// @notice Thrown when fewer signatures than the signer threshold are given.
    error NotEnoughSignatures(uint256 provided, uint256 threshold);
    /// @notice Thrown when a signature recovers to no address, or is malleable (high s).
    error InvalidSignature();
    /// @notice Thrown when signatures are not in strictly ascending signer order, which is what
    ///         makes each signer count once.
    error SignersNotAscending();
    /// @notice Thrown when a signature recovers to an address outside the current signer set.
    error UnauthorizedSigner(address signer);
    /// @notice Thrown when a proof is not 32-byte words (registry, root, then siblings).
    error MalformedProof();
    /// @notice Thrown when a proof names a registry that is not one of the engines.
    error UnknownRegistry(address registry);
    // settlement
    /// @notice Thrown when a settlement price is posted, or a position settled, before the
    ///         instrument's expiry (or for a perpetual, which never expires).
    error NotExpired(uint64 expiry);
    /// @notice Thrown when the settlement price of an underlying and expiry is posted twice.
    error SettlementPriceAlreadySet();
    /// @notice Thrown when a settlement price's market data is not from the `maxSnapshotAge`
    ///         before the expiry.
    error SettlementPriceNotAtExpiry(uint64 snapshotTime, uint64 expiry);
    // governance
    /// @notice Thrown when a governance value (risk parameter, timelock delay) is outside its hard
    ///         bounds; `name` says which.
    error ParameterOutOfBounds(bytes32 name);
    /// @notice Thrown when a timelocked change is executed that is not scheduled (never, or
    ///         cancelled, or executed already).
    error NothingScheduled();
    /// @notice Thrown when a timelocked change is executed before its `eta`.
    error TimelockNotElapsed(uint256 eta);
    /// @notice Thrown when a signer set is empty, too large, not strictly ascending, or its
    ///         threshold is zero or above its size.
    error InvalidSignerSet();

    // ============================================================================ Events

    event Deposited(address indexed account, address indexed from, uint256 tokenAmount, uint256 amount);
    event Withdrawn(address indexed account, address indexed to, uint256 tokenAmount, uint256 amount);
    event CashUpdated(address indexed account, int256 cash);
    event PositionUpdated(address indexed account, uint256 indexed instrumentId, int256 size, bytes32 stateHash);
    /// @notice Every position of `from` in `instrumentIds` (in that order) moved by
    ///         ceil(|size| × fraction) (all of it at fraction ≥ 1e18) to `to`.
    event PortfolioSliceTransferred(
        address indexed from,
        address indexed to,
        uint256 fraction,
        uint256[] instrumentIds,
        bytes32 fromStateHash,
        bytes32 toStateHash
    );
    event InstrumentListed(
        uint256 indexed instrumentId, bytes32 indexed underlying, InstrumentKind kind, uint256 strike, uint64 expiry
    );
    event OrderFilled(
        bytes32 indexed orderHash,
        address indexed maker,
        address indexed taker,
        uint256 instrumentId,
        int256 makerSizeDelta,
        uint256 price,
        uint256 fee
    );
    event OrderCancelled(bytes32 indexed orderHash, address indexed maker);
    event MinNonceRaised(address indexed maker, uint256 minNonce);
    event SettlementPricePosted(bytes32 indexed underlying, uint64 indexed expiry, uint256 price);
    /// @notice An expired option position closed in cash (by the liquidation engine's `settle`).
    event PositionSettled(address indexed account, uint256 indexed instrumentId, int256 size, int256 payout);
    event SnapshotPosted(uint64 snapshotTime);
    event RiskConfigScheduled(RiskConfig config, bytes32 paramsHash, uint256 eta);
    event RiskConfigUpdated(RiskConfig config, bytes32 paramsHash);
    event SignerSetScheduled(address[] signers, uint8 threshold, uint256 eta);
    event SignerSetUpdated(uint256 indexed epoch, address[] signers, uint8 threshold);
    event EngineScheduled(address indexed engine, bool enabled, uint256 eta);
    event EngineUpdated(address indexed engine, bool enabled);
    event ScheduledCancelled(bytes32 indexed what);
    event GuardianUpdated(address indexed guardian);
    event PauseUpdated(bool tradingPaused, bool withdrawalsPaused);
    event FeesWithdrawn(address indexed to, uint256 amount);

    // ============================================================================ Collateral

    /// @notice Credits `tokenAmount` of the collateral token, pulled from the caller, to `account`.
    /// @dev Allowed while paused (deposits only add safety). Reverts if the token delivers a
    ///      different amount than requested (fee-on-transfer tokens are rejected).
    function deposit(address account, uint256 tokenAmount) external;

    /// @notice Sends `tokenAmount` of collateral to `to`, debited from the caller's cash.
    /// @dev With open positions the caller must pass an attestation for its current portfolio
    ///      state; equity after the withdrawal must be at least the attested IM. Without open
    ///      positions the attestation is ignored (pass an empty one). Refused while the guardian
    ///      has paused withdrawals (`WithdrawalsPaused`) and while any account is flagged with bad
    ///      debt (`WithdrawalsGatedByBadDebt`).
    function withdraw(uint256 tokenAmount, address to, MarginAttestation calldata att, bytes calldata sigs) external;

    // ============================================================================ Trading

    /// @notice Fills `fillAmount` contracts of the maker's signed order with the caller as taker.
    /// @param makerAtt Attestation of the maker's portfolio after this fill.
    /// @param takerAtt Attestation of the taker's portfolio after this fill.
    /// @dev Both accounts must meet IM afterwards. The taker pays `takerFee` of the traded amount.
    function fillOrder(
        Order calldata order,
        bytes calldata makerSignature,
        uint256 fillAmount,
        MarginAttestation calldata makerAtt,
        bytes calldata makerSigs,
        MarginAttestation calldata takerAtt,
        bytes calldata takerSigs
    ) external;

    /// @notice Cancels one of the caller's orders.
    function cancelOrder(Order calldata order) external;

    /// @notice Cancels every order of the caller with a nonce below `minNonce`.
    /// @dev `minNonce` must be above the caller's current one (`MinNonceNotIncreasing`).
    function raiseMinNonce(uint256 minNonce) external;

    // ============================================================================ Settlement

    /// @notice Records the threshold-signed settlement price of an underlying at an expiry.
    /// @dev Anyone may submit it once the expiry has passed; it cannot be changed afterwards. The
    ///      price must come from market data at the expiry: `expiry − maxSnapshotAge ≤
    ///      snapshotTime ≤ expiry`.
    function postSettlementPrice(SettlementPrice calldata price, bytes calldata sigs) external;

    /// @dev Settling positions (paying payers and winners, absorbing deficits) is the loss
    ///      waterfall's business: see ILiquidationEngine.settle.

    /// @notice Posts the oracle's threshold-signed newest snapshot time, raising the freshness
    ///         floor (`latestSnapshotTime`) for every later attestation. Anyone may call.
    function postSnapshot(SnapshotHeartbeat calldata heartbeat, bytes calldata sigs) external;

    // ============================================================================ Views

    /// @notice The account's signed cash balance in WAD.
    function cashOf(address account) external view returns (int256);

    /// @notice The account's signed position in an instrument, in WAD contracts.
    function positionOf(address account, uint256 instrumentId) external view returns (int256);

    /// @notice The account's open instrument ids.
    function openInstruments(address account) external view returns (uint256[] memory);

    /// @notice The account's portfolio commitment: a hash chain over every position update.
    function stateHashOf(address account) external view returns (bytes32);

    /// @notice A listed instrument (reverts `UnknownInstrument` for an id never listed).
    function instrument(uint256 instrumentId) external view returns (Instrument memory);

    /// @notice The settlement price (WAD) of `underlying` at `expiry`; 0 until posted.
    function settlementPrices(bytes32 underlying, uint64 expiry) external view returns (uint256);

    /// @notice Σ |size| of the short positions of an instrument.
    function shortOpenInterest(uint256 instrumentId) external view returns (uint256);

    /// @notice Whether `account` is flagged with unresolved bad debt.
    function flagged(address account) external view returns (bool);

    /// @notice Whether withdrawals are gated: some account has unresolved bad debt.
    function withdrawalsGated() external view returns (bool);

    /// @notice The risk parameters in force.
    function riskConfig() external view returns (RiskConfig memory);

    /// @notice Whether attestations carrying `version` are accepted now: the version in force, or
    ///         the previous one during the grace window after a change.
    function acceptsParamsVersion(uint32 version) external view returns (bool);

    /// @notice The epoch of the oracle signer set in office (raised by every installed set).
    function signerEpoch() external view returns (uint64);

    /// @notice The newest market snapshot time accepted so far (the freshness floor's anchor).
    function latestSnapshotTime() external view returns (uint64);

    /// @notice Whether `account` is an enabled engine (see IClearinghouseEngineHooks).
    function isEngine(address account) external view returns (bool);

    /// @notice The EIP-712 domain separator every oracle attestation and order is signed under.
    function domainSeparator() external view returns (bytes32);
}

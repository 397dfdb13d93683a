// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Ownable2Step, Ownable} from "@openzeppelin/contracts/access/Ownable2Step.sol";

import {IClearinghouse, RiskConfig} from "../interfaces/IClearinghouse.sol";
import {WAD} from "../libraries/FixedPoint.sol";
import {PositionBook} from "../libraries/PositionBook.sol";

/// @title RiskGovernance
/// @notice Who may change what, and how fast. The owner (two-step transfer; in production a
///         multisig or DAO executor) changes risk parameters, the oracle signer set and the
///         trusted engines only through a timelock, each value checked against hard bounds when
///         scheduled and again when executed. A guardian may pause trading and withdrawals at
///         once; nothing here can pause deposits, liquidations or settlement.
abstract contract RiskGovernance is IClearinghouse, Ownable2Step {
    // ============================================================================ Bounds

    uint256 public constant MIN_TIMELOCK_DELAY = 60;
    uint256 public constant MAX_TIMELOCK_DELAY = 30 days;
    uint256 public constant MAX_SIGNERS = 16;
    /// @dev Highest position cap (`maxPositions`) governance may set: half the storage bound, so
    ///      an account at the cap can always receive a whole other account at the cap.
    uint256 internal constant MAX_POSITIONS_CAP = PositionBook.MAX_POSITIONS / 2;

    // ============================================================================ Storage

    /// @notice Delay between scheduling a change and being able to execute it.
    uint256 public immutable timelockDelay;

    RiskConfig internal _config;
    /// @notice keccak256 of the off-chain model parameters of `_config.paramsVersion`.
    bytes32 public paramsHash;
    /// @notice The version in force before the last change, and when that change took effect:
    ///         attestations of the previous version stay acceptable for `maxSnapshotAge` seconds,
    ///         so executing a change (anyone may) never leaves a block without usable attestations.
    uint32 public previousParamsVersion;
    uint64 public paramsChangedAt;

    /// @dev Oracle signers: an address signs for the current set iff its epoch equals `signerEpoch`.
    mapping(address => uint64) internal _signerEpochOf;
    uint64 public signerEpoch;
    uint8 public signerThreshold;
    address[] internal _signers;

    mapping(address => bool) public isEngine;

    address public guardian;
    bool public tradingPaused;
    bool public withdrawalsPaused;

    // pending (timelocked) changes
    RiskConfig internal _pendingConfig;
    bytes32 internal _pendingParamsHash;
    uint256 public pendingConfigEta;
    address[] internal _pendingSigners;
    uint8 internal _pendingThreshold;
    uint256 public pendingSignersEta;
    mapping(address => uint256) public pendingEngineEta;
    mapping(address => bool) internal _pendingEngineEnabled;

    constructor(
        address owner_,
        address guardian_,
        uint256 timelockDelay_,
        RiskConfig memory config_,
        bytes32 paramsHash_,
        address[] memory signers_,
        uint8 threshold_
    ) Ownable(owner_) {
        if (timelockDelay_ < MIN_TIMELOCK_DELAY || timelockDelay_ > MAX_TIMELOCK_DELAY) {
            revert IClearinghouse.ParameterOutOfBounds("timelockDelay");
        }
        timelockDelay = timelockDelay_;
        _checkConfig(config_);
        _config = config_;
        paramsHash = paramsHash_;
        emit IClearinghouse.RiskConfigUpdated(config_, paramsHash_);
        _checkSignerSet(signers_, threshold_);
        _installSignerSet(signers_, threshold_);
        guardian = guardian_;
        emit IClearinghouse.GuardianUpdated(guardian_);
    }

    // ============================================================================ Views

    /// @inheritdoc IClearinghouse
    function riskConfig() external view returns (RiskConfig memory) {
        return _config;
    }

    /// @inheritdoc IClearinghouse
    function acceptsParamsVersion(uint32 version) public view returns (bool) {
        if (version == _config.paramsVersion) return true;
        return version != 0 && version == previousParamsVersion
            && block.timestamp <= uint256(paramsChangedAt) + _config.maxSnapshotAge;
    }

    function signers() external view returns (address[] memory) {
        return _signers;
    }

    function isSigner(address account) public view returns (bool) {
        return _signerEpochOf[account] == signerEpoch && account != address(0);
    }

    // ============================================================================ Risk parameters

    /// @notice Schedules a new risk configuration and off-chain parameter hash.
    function scheduleRiskConfig(RiskConfig calldata config, bytes32 newParamsHash) external onlyOwner {
        _checkConfig(config);
        _pendingConfig = config;
        _pendingParamsHash = newParamsHash;
        pendingConfigEta = block.timestamp + timelockDelay;
        emit IClearinghouse.RiskConfigScheduled(config, newParamsHash, pendingConfigEta);
    }

    /// @notice Applies the scheduled configuration once its timelock has elapsed. Anyone may call.
    function executeRiskConfig() external {
        uint256 eta = pendingConfigEta;
        _requireElapsed(eta);
        RiskConfig memory config = _pendingConfig;
        _checkConfig(config);
        if (config.paramsVersion != _config.paramsVersion) {
            previousParamsVersion = _config.paramsVersion;
            paramsChangedAt = uint64(block.timestamp);
        }
        _config = config;
        paramsHash = _pendingParamsHash;
        delete pendingConfigEta;
        emit IClearinghouse.RiskConfigUpdated(config, paramsHash);
    }

    // ============================================================================ Signer set

    /// @notice Schedules a new oracle signer set: strictly ascending addresses, m-of-n threshold.
    function scheduleSignerSet(address[] calldata newSigners, uint8 threshold) external onlyOwner {
        _checkSignerSet(newSigners, threshold);
        _pendingSigners = newSigners;
        _pendingThreshold = threshold;
        pendingSignersEta = block.timestamp + timelockDelay;
        emit IClearinghouse.SignerSetScheduled(newSigners, threshold, pendingSignersEta);
    }

    /// @notice Installs the scheduled signer set once its timelock has elapsed. Anyone may call.
    /// @dev Signatures of signers outside the new set stop counting at once.
    function executeSignerSet() external {
        _requireElapsed(pendingSignersEta);
        delete pendingSignersEta;
        _installSignerSet(_pendingSigners, _pendingThreshold);
    }

    // ============================================================================ Engines

    /// @notice Schedules enabling or disabling an engine (liquidation, ADL) that may move positions.
    function scheduleEngine(address engine, bool enabled) external onlyOwner {
        if (engine == address(0)) revert IClearinghouse.ZeroAddress();
        _pendingEngineEnabled[engine] = enabled;
        pendingEngineEta[engine] = block.timestamp + timelockDelay;
        emit IClearinghouse.EngineScheduled(engine, enabled, pendingEngineEta[engine]);
    }

    function executeEngine(address engine) external {
        _requireElapsed(pendingEngineEta[engine]);
        delete pendingEngineEta[engine];
        isEngine[engine] = _pendingEngineEnabled[engine];
        emit IClearinghouse.EngineUpdated(engine, isEngine[engine]);
    }

    /// @notice Drops a scheduled change: "config", "signers", or an engine address as bytes32.
    function cancelScheduled(bytes32 what) external onlyOwner {
        if (what == "config") delete pendingConfigEta;
        else if (what == "signers") delete pendingSignersEta;
        else delete pendingEngineEta[address(uint160(uint256(what)))];
        emit IClearinghouse.ScheduledCancelled(what);
    }

    // ============================================================================ Guardian

    function setGuardian(address newGuardian) external onlyOwner {
        guardian = newGuardian;
        emit IClearinghouse.GuardianUpdated(newGuardian);
    }

    /// @notice Pauses or resumes trading and withdrawals. The guardian or the owner may call.
    function setPaused(bool trading, bool withdrawals) external {
        if (msg.sender != guardian && msg.sender != owner()) revert IClearinghouse.NotGuardian();
        tradingPaused = trading;
        withdrawalsPaused = withdrawals;
        emit IClearinghouse.PauseUpdated(trading, withdrawals);
    }

    // ============================================================================ Internal

    function _requireElapsed(uint256 eta) internal view {
        if (eta == 0) revert IClearinghouse.NothingScheduled();
        if (block.timestamp < eta) revert IClearinghouse.TimelockNotElapsed(eta);
    }

    function _installSignerSet(address[] memory newSigners, uint8 threshold) internal {
        uint64 epoch = signerEpoch + 1;
        signerEpoch = epoch;
        signerThreshold = threshold;
        delete _signers;
        for (uint256 i; i < newSigners.length; ++i) {
            _signerEpochOf[newSigners[i]] = epoch;
            _signers.push(newSigners[i]);
        }
        emit IClearinghouse.SignerSetUpdated(epoch, newSigners, threshold);
    }

    function _checkSignerSet(address[] memory newSigners, uint8 threshold) internal pure {
        uint256 n = newSigners.length;
        if (n == 0 || n > MAX_SIGNERS || threshold == 0 || threshold > n) revert IClearinghouse.InvalidSignerSet();
        address last;
        for (uint256 i; i < n; ++i) {
            // ascending also rules out duplicates and the zero address
            if (newSigners[i] <= last) revert IClearinghouse.InvalidSignerSet();
            last = newSigners[i];
        }
    }

    function _checkConfig(RiskConfig memory c) internal pure {
        if (c.paramsVersion == 0) revert IClearinghouse.ParameterOutOfBounds("paramsVersion");
        if (c.maxSnapshotAge < 5 || c.maxSnapshotAge > 3600) {
            revert IClearinghouse.ParameterOutOfBounds("maxSnapshotAge");
        }
        if (c.snapshotTolerance > 600 || c.snapshotTolerance > c.maxSnapshotAge) {
            revert IClearinghouse.ParameterOutOfBounds("snapshotTolerance");
        }
        if (c.maxPositions == 0 || c.maxPositions > MAX_POSITIONS_CAP) {
            revert IClearinghouse.ParameterOutOfBounds("maxPositions");
        }
        if (c.takerFee > WAD / 100) revert IClearinghouse.ParameterOutOfBounds("takerFee");
        if (c.liquidationBuffer > WAD / 2) revert IClearinghouse.ParameterOutOfBounds("liquidationBuffer");
        if (c.liquidatorBonus > WAD / 2) revert IClearinghouse.ParameterOutOfBounds("liquidatorBonus");
        if (c.insuranceFee > WAD / 2) revert IClearinghouse.ParameterOutOfBounds("insuranceFee");
        // The partial-liquidation fraction divides by (1 + buffer − bonus − fee): keep it ≥ 0.5,
        // with room for the fee doubling while the insurance fund is below target.
        if (uint256(c.liquidatorBonus) + 2 * uint256(c.insuranceFee) > WAD / 2 + c.liquidationBuffer) {
            revert IClearinghouse.ParameterOutOfBounds("liquidatorBonus+insuranceFee");
        }
        if (c.dustMargin > 1e24) revert IClearinghouse.ParameterOutOfBounds("dustMargin");
    }
}

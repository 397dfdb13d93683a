"""EIP-1559 fees for the keeper's transactions.

The price of the next block comes from `eth_feeHistory`: its last base fee is the one the next
block will charge (not the latest block's, which lags by a block — and a transaction whose
maxFeePerGas is below the next base fee is refused). The tip is a percentile of what recent
blocks' transactions paid. maxFeePerGas leaves room for the base fee to rise for a few full
blocks (×1.125 per block) and is capped by what the action is worth: a liquidation never pays
more gas than its bonus, a duty never more than the configured ceiling.

A replacement (same nonce) must raise BOTH maxFeePerGas and maxPriorityFeePerGas by the node's
minimum (10% on geth); the keeper raises them by 12.5% and to at least the fresh estimate.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

GWEI = 10**9


@dataclass(frozen=True)
class FeePolicy:
    history_blocks: int = 5  # blocks of eth_feeHistory to read
    percentile: float = 60.0  # tip percentile of each block's transactions
    min_tip: int = GWEI // 10  # floor of the tip (0.1 gwei)
    max_fee: int = 500 * GWEI  # ceiling of maxFeePerGas for anything (duties, cancellations)
    base_headroom: float = 2.0  # maxFee = headroom × next base fee + tip (six full blocks of rises)
    bump: float = 1.125  # a replacement raises both fees by at least this factor (geth needs 1.10)
    full_ratio: float = 0.8  # a block this full had no room left for low tips
    recent_blocks: int = 3  # the newest blocks the tip is the median of


@dataclass(frozen=True)
class FeeQuote:
    """What the next block costs: its base fee and a competitive tip."""

    next_base: int
    tip: int


@dataclass(frozen=True)
class Fees:
    max_fee: int
    tip: int

    def tx_fields(self) -> dict[str, int]:
        return {"maxFeePerGas": self.max_fee, "maxPriorityFeePerGas": self.tip}


def quote_from_history(history: Any, policy: FeePolicy) -> FeeQuote:
    """A quote from an eth_feeHistory answer (reward percentiles = [policy.percentile]).

    Tips only compete in full blocks: a block with room left would have taken the minimal tip
    too, so it counts as that (one generous payer in a quiet block sets no price). While the
    newest block is full, the tip is the median over the newest `recent_blocks` (a spike counts
    from its second full block on); once a block has room again, the minimal tip gets in."""
    bases = [int(b) for b in history["baseFeePerGas"]]
    next_base = bases[-1] if bases else 0
    rewards = history.get("reward") or []
    ratios = [float(r) for r in (history.get("gasUsedRatio") or [])]
    tips = []
    for k, row in enumerate(rewards):
        full = k < len(ratios) and ratios[k] >= policy.full_ratio
        tips.append(max(int(row[0]), policy.min_tip) if (row and full) else policy.min_tip)
    if not tips or not ratios or ratios[-1] < policy.full_ratio:
        return FeeQuote(next_base, policy.min_tip)
    return FeeQuote(next_base, max(int(statistics.median(tips[-policy.recent_blocks :])), policy.min_tip))


def fetch_quote(w3: Any, policy: FeePolicy) -> FeeQuote:
    """Reads eth_feeHistory; falls back to the latest block when a node lacks it."""
    try:
        history = w3.eth.fee_history(policy.history_blocks, "latest", [policy.percentile])
        return quote_from_history(history, policy)
    except Exception as err:  # a node without eth_feeHistory: the latest block, one rise ahead
        if (
            "fee_history" not in str(err).lower()
            and "feehistory" not in str(err).lower()
            and "not supported" not in str(err).lower()
            and "method not found" not in str(err).lower()
            and "does not exist" not in str(err).lower()
        ):
            raise
        block = w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas") or 0)
        return FeeQuote(_ceil(base * 1.125), policy.min_tip)


def _ceil(x: float) -> int:
    return int(math.ceil(x))


def price(quote: FeeQuote, policy: FeePolicy, cap: int | None = None) -> Fees | None:
    """Fees for a first send. `cap` is the most per gas the action is worth (None: the policy
    ceiling only). None when even the next block's base fee plus a minimal tip is above it."""
    ceiling = min(policy.max_fee, cap) if cap is not None else policy.max_fee
    wanted = _ceil(policy.base_headroom * quote.next_base) + quote.tip
    max_fee = min(wanted, ceiling)
    if max_fee < quote.next_base + min(quote.tip, policy.min_tip):
        return None
    return Fees(max_fee, min(quote.tip, max_fee))


def replacement(old: Fees, quote: FeeQuote, policy: FeePolicy, cap: int | None = None) -> Fees | None:
    """Fees for a replacement at the same nonce: both fees ≥ old × bump, raised towards the fresh
    price as far as the cap allows. None when even the minimal valid replacement (or the next
    base fee plus that tip) exceeds the cap: the old transaction has to stay as it is."""
    ceiling = min(policy.max_fee, cap) if cap is not None else policy.max_fee
    min_tip = _ceil(old.tip * policy.bump)
    min_max = _ceil(old.max_fee * policy.bump)
    tip = max(min_tip, quote.tip)
    max_fee = max(min_max, _ceil(policy.base_headroom * quote.next_base) + tip)
    if max_fee > ceiling:  # bid what the cap allows, if that is still a valid replacement
        max_fee = ceiling
        tip = max(min_tip, min(tip, ceiling - quote.next_base))
        if max_fee < min_max or max_fee < quote.next_base + min_tip:
            return None
    return Fees(max_fee, min(tip, max_fee))


def underpriced(current: Fees, quote: FeeQuote) -> bool:
    """Whether a pending transaction can no longer be included (or only without a tip)."""
    return current.max_fee < quote.next_base + min(current.tip, quote.tip) or current.tip < quote.tip


def cap_for_value(worth_wei: int | None, gas: int) -> int | None:
    """The most per gas an action worth `worth_wei` can pay (None: no worth-based cap)."""
    if worth_wei is None:
        return None
    return max(0, worth_wei // max(gas, 1))

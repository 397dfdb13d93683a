"""What the oracle signs and the contracts verify: EIP-712 messages, their encoding and signing,
and the portfolio state commitment. Pure functions: no chain access."""

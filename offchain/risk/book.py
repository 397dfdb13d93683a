"""Positions: one portfolio, or a whole book of accounts as a sparse accounts × instruments matrix.

The book is the engine's scale trick: everything per account is a sparse matrix product with a
small per-instrument matrix (instruments × scenarios, instruments × Greeks), so cost grows with
instruments × scenarios + positions, never accounts × positions × scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from offchain.risk.errors import RiskError
from offchain.risk.instruments import Instrument, InstrumentTable


@dataclass(frozen=True)
class Portfolio:
    """One account's positions (instrument → signed size in contracts) and its on-chain cash."""

    positions: dict[Instrument, float]
    cash: float = 0.0
    account: str = ""

    def __post_init__(self) -> None:
        for inst, size in self.positions.items():
            if not np.isfinite(size):
                raise RiskError(f"position size for {inst.name} must be a finite number")
        if not np.isfinite(self.cash):
            raise RiskError("cash must be a finite number")

    def scaled(self, k: float) -> "Portfolio":
        return Portfolio({i: q * k for i, q in self.positions.items()}, self.cash * k, self.account)

    def plus(self, other: "Portfolio") -> "Portfolio":
        merged = dict(self.positions)
        for inst, q in other.positions.items():
            merged[inst] = merged.get(inst, 0.0) + q
        return Portfolio(merged, self.cash + other.cash, self.account)

    def nonzero(self) -> dict[Instrument, float]:
        return {i: q for i, q in self.positions.items() if q != 0.0}


@dataclass
class UnderlyingBlock:
    """The book's columns for one underlying, split into long and short parts."""

    columns: NDArray[np.int64]  # instrument indices (into the table) of this underlying
    q: sp.csr_matrix  # accounts × len(columns), signed sizes
    q_long: sp.csr_matrix  # max(q, 0)
    q_short: sp.csr_matrix  # max(-q, 0)


@dataclass
class Book:
    """Many accounts' positions over one instrument table. Rows are accounts, columns instruments."""

    table: InstrumentTable
    q: sp.csr_matrix
    cash: NDArray[np.float64]
    accounts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.q.shape[1] != len(self.table):
            raise RiskError("book columns do not match the instrument table")
        if self.cash.shape != (self.q.shape[0],):
            raise RiskError("book cash must have one entry per account")

    @property
    def n_accounts(self) -> int:
        return int(self.q.shape[0])

    @classmethod
    def from_arrays(
        cls,
        table: InstrumentTable,
        n_accounts: int,
        rows: NDArray[np.int64],
        cols: NDArray[np.int64],
        sizes: NDArray[np.float64],
        cash: NDArray[np.float64] | None = None,
        accounts: list[str] | None = None,
    ) -> "Book":
        q = sp.csr_matrix((sizes, (rows, cols)), shape=(n_accounts, len(table)), dtype=np.float64)
        q.sum_duplicates()
        q.eliminate_zeros()
        return cls(table, q, np.zeros(n_accounts) if cash is None else np.asarray(cash, np.float64), accounts or [])

    @classmethod
    def from_portfolios(cls, portfolios: list[Portfolio], table: InstrumentTable | None = None) -> "Book":
        if table is None:
            listed = sorted({i for p in portfolios for i in p.positions}, key=lambda i: i.name)
            table = InstrumentTable(listed)
        rows, cols, sizes = [], [], []
        for r, p in enumerate(portfolios):
            for inst, size in p.positions.items():
                rows.append(r)
                cols.append(table.position_of(inst))
                sizes.append(size)
        return cls.from_arrays(
            table,
            len(portfolios),
            np.asarray(rows, np.int64),
            np.asarray(cols, np.int64),
            np.asarray(sizes, np.float64),
            np.asarray([p.cash for p in portfolios], np.float64),
            [p.account for p in portfolios],
        )

    @cached_property
    def blocks(self) -> list[UnderlyingBlock]:
        """Column blocks per underlying, in table.underlyings order (built once per book)."""
        q_csc = self.q.tocsc()
        out = []
        for u in range(len(self.table.underlyings)):
            columns = np.flatnonzero(self.table.underlying_idx == u)
            block = q_csc[:, columns].tocsr()
            out.append(
                UnderlyingBlock(
                    columns=columns,
                    q=block,
                    q_long=block.maximum(0).tocsr(),
                    q_short=(-block).maximum(0).tocsr(),
                )
            )
        return out

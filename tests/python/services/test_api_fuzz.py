"""A property-based fuzz of every endpoint of the gateway and a signer, generated from their own
OpenAPI documents (schemathesis), against real processes on a real Anvil node.

- Requests that fit the schema (positive): never a 5xx — a client's request, however odd, gets a
  2xx or a 4xx saying what is wrong.
- Requests that break the schema (negative: wrong types, out of range, missing or unknown fields):
  always a 4xx, never a signature.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from offchain.sim.desk import trader_keys
from offchain.sim.harness import Harness, start_harness, stop_harness

pytestmark = [pytest.mark.chain, pytest.mark.slow]

EXAMPLES = 12  # per operation and mode: ~700 requests over both services


@pytest.fixture(scope="module")
def h(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    harness = start_harness(tmp_path_factory.mktemp("fuzz"), keeper=False)
    try:
        maker, taker = trader_keys(90, 2)
        harness.desk.fund_gas([maker.address, taker.address])
        harness.desk.deposit(maker, 100_000)
        harness.desk.deposit(taker, 100_000)
        perp = next(i for i, n in harness.deployment.instruments.items() if n == "ETH-PERP")
        assert harness.desk.fill(maker, taker, perp, -1.0, 3000.0).ok
        yield harness
    finally:
        stop_harness(harness)


def operations(base: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(base + "/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


def fuzz(base: str, operation: Any, mode: GenerationMode) -> list[str]:
    problems: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        response = case.call(base_url=base, timeout=30)
        status = response.status_code
        sent = f"{case.method} {case.formatted_path} query={case.query} body={json.dumps(case.body, default=str)[:200]}"
        if status >= 500:
            problems.append(f"{status} for {sent}: {response.text[:200]}")
        elif mode is GenerationMode.NEGATIVE and status < 400:
            problems.append(f"{status} (accepted) for an invalid request {sent}: {response.text[:200]}")
        elif status >= 400:
            body = response.json()
            assert set(body) >= {"error", "request_id"}, body
            assert '"signature":' not in response.text and "items" not in body, "an error signs nothing"

    try:
        run()
    except Unsatisfiable:
        # no input can break the schema of an operation that takes none (/health, /v1/marks)
        assert mode is GenerationMode.NEGATIVE, operation.path
        problems.append("no-input")
    return problems


@pytest.mark.parametrize("service", ["gateway", "signer0"])
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_endpoint_holds_under_generated_requests(h: Harness, service: str, mode: GenerationMode) -> None:
    base = h.stack.procs[service].url
    ops = operations(base)
    assert len(ops) >= (10 if service == "gateway" else 14), [o.path for o in ops]
    problems: list[str] = []
    for operation in ops:
        problems += fuzz(base, operation, mode)
    inputless = problems.count("no-input")
    problems = [p for p in problems if p != "no-input"]
    assert not problems, "\n".join(problems[:20])
    assert inputless <= 3, "most operations take input, and each was fuzzed with invalid input"

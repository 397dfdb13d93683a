"""HTTP APIs: a signer (one Oracle, one key) and the gateway that combines m-of-n signers.

Both serve /health, /metrics (Prometheus) and /openapi.json. Traders fetch withdrawal and trade
attestations; keepers fetch liquidation, ADL and settlement attestations and the at-risk list.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from eth_utils import to_checksum_address
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from offchain.attest.eip712 import Domain, signer_of
from offchain.attest.messages import from_wire, to_wire
from offchain.errors import DpreError
from offchain.ops.httpserver import HttpError, JsonServer, status_of
from offchain.ops.logs import event
from offchain.oracle.core import Oracle, SignedItem
from offchain.oracle.cosign import Content, changed_fields, content_key, content_of, differences, proposal_order

log = logging.getLogger("oracle.http")

ATTEST_ENDPOINTS = ("margin", "trade", "liquidation", "adl", "settlement", "heartbeat", "commitment")


def openapi(title: str, signer: bool = False) -> dict[str, Any]:
    """The API description (OpenAPI 3.1). Bodies are JSON; big integers are decimal strings."""
    attest = {
        "margin": ("Attestation of an account's current portfolio (for withdrawals)", {"account": "address"}),
        "trade": (
            "Post-trade attestations of both sides of a fill",
            {"order": "{maker, instrument_id, size, price, nonce, deadline}", "fill_amount": "WAD", "taker": "address"},
        ),
        "liquidation": (
            "Attestations of accounts to liquidate and of the liquidator after taking the slices",
            {"accounts": "[address]", "liquidator": "address"},
        ),
        "adl": (
            "ADL plan of a bankrupt account: marks, ranked queues (Merkle roots) and fills",
            {"account": "address"},
        ),
        "settlement": (
            "Settlement price of an underlying at a passed expiry",
            {"underlying": "ETH", "expiry": "unix seconds"},
        ),
        "heartbeat": ("The signer's newest market snapshot time, for postSnapshot", {"min_block": "block (optional)"}),
        "commitment": (
            "One commitment (a StandardMerkleTree root) to every account's margin at the snapshot, "
            "for SnapshotCommitments.postCommitment; extra.left_out lists accounts not committed",
            {"min_block": "block (optional)"},
        ),
    }
    paths: dict[str, Any] = {
        "/health": {
            "get": {
                "summary": "Liveness, synced block, lag and market status",
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition"}}}
        },
        "/v1/accounts/{address}": {
            "get": {
                "summary": "Portfolio, equity and margin of an account",
                "parameters": [{"name": "address", "in": "path", "required": True}],
                "responses": {
                    "200": {"description": "ok"},
                    "400": {"description": "malformed address"},
                    "404": {"description": "unknown account"},
                },
            }
        },
        "/v1/marks": {
            "get": {
                "summary": "Mark of one contract of every listed instrument at the oracle's snapshot",
                "responses": {"200": {"description": "{block, snapshot_time, marks: {instrument id: mark}}"}},
            }
        },
        "/v1/replica": {
            "get": {
                "summary": "The signer's replica: block, block hash, digest; with detail=1 every "
                "account's cash, state hash and positions (exact integers)",
                "parameters": [{"name": "detail", "in": "query", "required": False}],
                "responses": {"200": {"description": "ok"}},
            }
        },
        "/v1/commitments/{root}/proofs/{account}": {
            "get": {
                "summary": "An account's committed MarginAttestation and its Merkle proof (siblings from the leaf up)",
                "parameters": [
                    {"name": "root", "in": "path", "required": True},
                    {"name": "account", "in": "path", "required": True},
                ],
                "responses": {
                    "200": {"description": "{root, block, attestation, proof}"},
                    "404": {"description": "not a recent commitment of the signers, or no such account in it"},
                },
            }
        },
        "/v1/commitments/{root}/proofs": {
            "get": {
                "summary": "Committed attestations and proofs of several accounts (accounts=comma-separated, at most 200)",
                "parameters": [
                    {"name": "root", "in": "path", "required": True},
                    {"name": "accounts", "in": "query", "required": True},
                ],
                "responses": {
                    "200": {"description": "{root, block, proofs: {account: {attestation, proof}}, missing}"},
                    "404": {"description": "not a recent commitment of the signers"},
                },
            }
        },
        "/v1/risk/accounts": {
            "get": {
                "summary": "Accounts whose equity / MM is below max_ratio, weakest first",
                "parameters": [{"name": "max_ratio", "in": "query", "required": False}],
                "responses": {"200": {"description": "ok"}},
            }
        },
    }
    for name, (summary, fields) in attest.items():
        paths[f"/v1/attest/{name}"] = {
            "post": {
                "summary": summary,
                "requestBody": {"content": {"application/json": {"example": fields}}},
                "responses": {
                    "200": {
                        "description": "signed items {type, message, signature(s)} and extra data; from the "
                        "gateway also `agreement`: identical, or cosigned (offchain/oracle/cosign.py)"
                    },
                    "400": {"description": "malformed request (the message names the field)"},
                    "404": {"description": "unknown account"},
                    "409": {"description": "impossible request (not liquidatable, expired, over the position cap)"},
                    "429": {"description": "rate limited"},
                    "503": {"description": "no trustworthy market data, or too few signers agree"},
                },
            }
        }
    if signer:
        paths["/v1/commitments/{root}/numbers"] = {
            "get": {
                "summary": "(value, IM, MM) per account of a commitment this signer built, for co-signers to check",
                "parameters": [{"name": "root", "in": "path", "required": True}],
                "responses": {
                    "200": {"description": "{root, block, numbers: {account: [value, IM, MM]}}"},
                    "404": {"description": "not among this signer's recent commitments"},
                },
            }
        }
        paths["/v1/cosign"] = {
            "post": {
                "summary": "Signs another signer's proposal for a request if it matches this signer's own answer "
                "(identical but for float-derived numbers within the tolerance)",
                "requestBody": {
                    "content": {
                        "application/json": {
                            "example": {
                                "endpoint": "margin",
                                "request": {"account": "address"},
                                "proposal": "{items: {name: {type, message}}, extra}",
                            }
                        }
                    }
                },
                "responses": {
                    "200": {"description": "the proposal's items signed by this signer"},
                    "400": {"description": "malformed request"},
                    "409": {"description": "refused: the proposal differs from this signer's own answer (listed)"},
                },
            }
        }
    return {"openapi": "3.1.0", "info": {"title": title, "version": "1"}, "paths": paths}


class Metrics:
    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("dpre_requests_total", "HTTP requests", ["endpoint", "status"], registry=self.registry)
        self.latency = Histogram(
            "dpre_attestation_seconds",
            "Time to answer an attestation request",
            ["endpoint"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.block = Gauge("dpre_synced_block", "Last block applied", registry=self.registry)
        self.lag = Gauge("dpre_block_lag", "Head minus synced block", registry=self.registry)


def _timed(metrics: Metrics, endpoint: str, fn: Callable[[], Any]) -> Any:
    start = time.perf_counter()
    status = "200"
    try:
        return fn()
    except DpreError as err:  # JsonServer answers it with the same status
        status = str(status_of(err) or 500)
        raise
    finally:
        metrics.requests.labels(endpoint, status).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


def signer_server(oracle: Oracle, host: str, port: int, rate: float = 200.0) -> JsonServer:
    metrics = Metrics("signer")
    r = metrics.registry
    Gauge("dpre_reorgs", "Chain reorganisations the replica rolled back", registry=r).set_function(
        lambda: float(oracle.state.reorgs)
    )
    Gauge(
        "dpre_diverged_accounts", "Accounts whose replica differs from the chain (no attestation for them)", registry=r
    ).set_function(lambda: float(len(oracle.state.diverged)))
    Gauge("dpre_hash_mismatches", "State hash mismatches seen since start", registry=r).set_function(
        lambda: float(oracle.state.hash_mismatches)
    )
    server = JsonServer(host, port, metrics.registry, rate=rate, burst=int(rate * 2))

    def health(_b: Any, _p: Any, _q: Any) -> Any:
        h = oracle.health()
        metrics.block.set(h["block"])
        metrics.lag.set(h["lag_blocks"])
        return h

    server.route("GET", "/health", health)
    server.route("GET", "/openapi.json", lambda b, p, q: openapi("DPRE risk oracle (signer)", signer=True))
    server.route(
        "GET",
        "/v1/accounts/{address}",
        lambda b, p, q: _timed(metrics, "account", lambda: oracle.account_report(p["address"])),
    )
    server.route(
        "GET",
        "/v1/risk/accounts",
        lambda b, p, q: _timed(metrics, "risk", lambda: oracle.risk_accounts(float(q.get("max_ratio", ["1.25"])[0]))),
    )
    server.route("GET", "/v1/marks", lambda b, p, q: _timed(metrics, "marks", oracle.marks))
    server.route(
        "GET",
        "/v1/replica",
        lambda b, p, q: _timed(metrics, "replica", lambda: oracle.replica(q.get("detail", ["0"])[0] in ("1", "true"))),
    )

    def attest_route(name: str) -> Callable[[Any, Any, Any], Any]:
        fn = getattr(oracle, f"attest_{name}")
        return lambda b, p, q: _timed(metrics, name, lambda: fn(b))

    for name in ATTEST_ENDPOINTS:
        server.route("POST", f"/v1/attest/{name}", attest_route(name))
    server.route("POST", "/v1/cosign", lambda b, p, q: _timed(metrics, "cosign", lambda: cosign(oracle, b)))
    server.route(
        "GET",
        "/v1/commitments/{root}/numbers",
        lambda b, p, q: _timed(metrics, "commitment_numbers", lambda: oracle.commitment_numbers(p["root"])),
    )
    server.route(
        "GET",
        "/v1/commitments/{root}/proofs/{account}",
        lambda b, p, q: _timed(metrics, "commitment_proof", lambda: oracle.commitment_proof(p["root"], p["account"])),
    )
    server.route(
        "GET",
        "/v1/commitments/{root}/proofs",
        lambda b, p, q: _timed(
            metrics, "commitment_proof", lambda: oracle.commitment_proofs(p["root"], q.get("accounts", [""])[0])
        ),
    )
    return server


def cosign(oracle: Oracle, body: dict[str, Any]) -> dict[str, Any]:
    """Signs another signer's proposal if this signer, answering the same request itself with the
    same handler, gets the same content up to float noise (offchain/oracle/cosign.py)."""
    endpoint, request, proposal = body.get("endpoint"), body.get("request"), body.get("proposal")
    if endpoint not in ATTEST_ENDPOINTS:
        raise HttpError(400, f"endpoint: one of {', '.join(ATTEST_ENDPOINTS)}")
    if not isinstance(request, dict):
        raise HttpError(400, "request: the original request body (an object)")
    if not isinstance(proposal, dict) or not isinstance(proposal.get("items"), dict):
        raise HttpError(400, "proposal: {items: {name: {type, message}}, extra}")
    if endpoint == "commitment":
        # a whole-book root differs with any one number: the proposer's numbers come along
        try:
            root = bytes.fromhex(str(proposal["items"]["commitment"]["message"]["root"]).removeprefix("0x"))
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, "proposal: a commitment item with a root") from None
        own = oracle.cosign_commitment(request, root, body.get("numbers"))
    else:
        own = getattr(oracle, f"attest_{endpoint}")(request)
    problems = differences(proposal, content_of(own))
    if problems:
        raise HttpError(409, "refusing to co-sign: " + "; ".join(problems), differences=problems)
    items = {k: SignedItem(from_wire(v)).wire(oracle.signer, oracle.domain) for k, v in proposal["items"].items()}
    event(log, "co-signed", endpoint=endpoint, block=own["block"])
    return {"block": own["block"], "signer": oracle.signer.address, "items": items, "extra": own["extra"]}


# ---------------------------------------------------------------------------------- gateway


def _http(method: str, url: str, body: dict[str, Any] | None, timeout: float) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"{}")
        except json.JSONDecodeError:
            return err.code, {"error": f"HTTP {err.code}"}


Answer = tuple[str, int, dict[str, Any]]  # (signer URL, HTTP status or 0 if unreachable, JSON body)

_SECP256K1_HALF_N = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0


@dataclass
class Vote:
    """One signer's signatures over one content, checked. `signer` is the authorized address
    every item's signature recovers to, whatever the answer claims to be."""

    url: str
    signer: str
    content: Content
    signatures: dict[str, bytes]
    block: int


class Gateway:
    """Fans each attestation request out to every signer and returns a content that at least
    `threshold` distinct authorized signers signed, with exactly `threshold` signatures in
    ascending signer order.

    Agreement is per response, not per item: every item of an answer (and its extra data) comes
    from the same agreeing signers, because the items describe one computation (a trade's two
    sides, a liquidation's accounts, fractions and liquidator). Votes count by the address the
    signatures recover to (never the address an answer claims), only for the configured on-chain
    signer set, and once per address, so a copied signature, an impostor key or a lone
    dissenting content never adds to a count. When no content reaches the threshold (honest
    signers a rounding step apart), the signed contents are proposed, most conservative first,
    to the signers that did not sign them (propose and co-sign: offchain/oracle/cosign.py)."""

    def __init__(
        self, signer_urls: list[str], threshold: int, domain: Domain, allowed: list[str], timeout: float = 10.0
    ) -> None:
        if not 1 <= threshold <= len(signer_urls):
            raise ValueError("threshold must be between 1 and the number of signers")
        if not allowed:
            raise ValueError("the authorized (on-chain) signer set is required")
        self.urls, self.threshold, self.domain, self.timeout = signer_urls, threshold, domain, timeout
        self.allowed = {to_checksum_address(a) for a in allowed}
        self.pool = ThreadPoolExecutor(max_workers=max(4, len(signer_urls) * 4))

    def _fan_out(self, path: str, body: dict[str, Any], urls: list[str] | None = None) -> list[Answer]:
        def one(url: str) -> Answer:
            try:
                status, data = _http("POST", url + path, body, self.timeout)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                return url, 0, {"error": f"unreachable: {getattr(err, 'reason', err)}"}
            except ValueError:
                return url, 502, {"error": "malformed answer (not JSON)"}
            return url, status, data if isinstance(data, dict) else {"error": "malformed answer (not an object)"}

        return list(self.pool.map(one, self.urls if urls is None else urls))

    def attest(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/attest/{endpoint}"
        answers = self._fan_out(path, body)
        groups, reasons = self._tally(answers)
        result = self._agreed(groups)
        if result is None:
            # Signers at different blocks can disagree: once more, all at least at the newest one.
            newest = max((v.block for votes in groups.values() for v in votes), default=0)
            if newest:
                body = {**body, "min_block": newest}
                answers = self._fan_out(path, body)
                groups, reasons = self._tally(answers)
                result = self._agreed(groups)
        if result is None and groups:
            self._explain(groups, reasons)
            result = self._cosign(endpoint, body, answers, groups, reasons)
        if result is not None:
            return result
        client_errors = [(s, d) for _, s, d in answers if 400 <= s < 500]
        if len(client_errors) > len(self.urls) - self.threshold:
            status, data = client_errors[0]
            raise HttpError(status, str(data.get("error", "rejected by the signers")))
        ok = sum(1 for _, s, _ in answers if s == 200)
        failures = [str(d.get("error")) for _, s, d in answers if s != 200 and d.get("error")]
        common = max(set(failures), key=failures.count) if failures else ""
        raise HttpError(
            503,
            f"refusing to attest: {ok} of {len(self.urls)} signers answered, "
            f"{self.threshold} identical signatures are required"
            + (" and no proposal was co-signed by enough signers" if groups else "")
            + (f" (signers say: {common})" if common else ""),
            signers=reasons,
        )

    def _tally(self, answers: list[Answer]) -> tuple[dict[str, list[Vote]], dict[str, str]]:
        """Valid votes grouped by exact content (one per signer address), and why each other
        answer does not count."""
        groups: dict[str, list[Vote]] = {}
        reasons: dict[str, str] = {}
        for url, status, data in answers:
            if status != 200:
                reasons[url] = str(data.get("error") or f"HTTP {status}")
                continue
            vote = self._vote(url, data)
            if isinstance(vote, str):
                reasons[url] = vote
                continue
            votes = groups.setdefault(content_key(vote.content), [])
            first = next((v for v in votes if v.signer == vote.signer), None)
            if first is not None:
                reasons[url] = f"repeats the signature of {vote.signer} already counted from {first.url}"
                continue
            votes.append(vote)
        return groups, reasons

    def _vote(self, url: str, data: dict[str, Any], content: Content | None = None) -> Vote | str:
        """The vote of an answer: over its own content, or over `content` (a co-signed proposal).
        A string says why the answer is no vote."""
        try:
            items = data["items"]
            wire = content["items"] if content is not None else items
            if not wire or set(items) != set(wire):
                return "answered with no items or other items than asked"
            parsed = {k: from_wire(v) for k, v in wire.items()}
            signatures = {k: bytes.fromhex(str(items[k]["signature"]).removeprefix("0x")) for k in parsed}
            for sig in signatures.values():
                # the contract's ECDSA takes 65-byte low-s records only: anything else would sink the bundle
                if len(sig) != 65 or int.from_bytes(sig[32:64], "big") > _SECP256K1_HALF_N or sig[64] not in (27, 28):
                    return "malformed signature (not a 65-byte low-s record)"
            recovered = {to_checksum_address(signer_of(self.domain, parsed[k], signatures[k])) for k in parsed}
            block = int(data.get("block", 0))
            extra = data.get("extra") or {}
        except Exception as err:  # anything a faulty or hostile signer sends: no vote, and say why
            return f"malformed answer ({type(err).__name__}: {err})"
        if len(recovered) != 1:
            return f"items signed by different keys {sorted(recovered)}"
        signer = recovered.pop()
        if signer not in self.allowed:
            claimed = data.get("signer")
            return f"signed by {signer}, not an authorized signer" + (f" (claims to be {claimed})" if claimed else "")
        if content is None:
            content = {"items": {k: to_wire(v) for k, v in parsed.items()}, "extra": extra}
        return Vote(url, signer, content, signatures, block)

    def _agreed(self, groups: dict[str, list[Vote]]) -> dict[str, Any] | None:
        ready = [votes for votes in groups.values() if len(votes) >= self.threshold]
        if not ready:
            return None
        # two contents at the threshold need an equivocating signer: prefer the larger, then the safer
        best = min(ready, key=lambda votes: (-len(votes), proposal_order(votes[0].content)))
        return self._result(best, "identical")

    def _result(self, votes: list[Vote], agreement: str) -> dict[str, Any]:
        # exactly `threshold` signatures, lowest addresses first (the contract wants ascending
        # signers): each extra one costs ~7k gas and would make the cost depend on which signers
        # happened to answer in time
        chosen = sorted(votes, key=lambda v: int(v.signer, 16))[: self.threshold]
        content = chosen[0].content
        items = {}
        for k, v in content["items"].items():
            sigs = b"".join(vote.signatures[k] for vote in chosen)
            items[k] = {
                "type": v["type"],
                "message": v["message"],
                "signatures": "0x" + sigs.hex(),
                "signers": [vote.signer for vote in chosen],
            }
        return {
            "block": max(v.block for v in chosen),
            "items": items,
            "extra": content["extra"],
            "agreement": agreement,
        }

    def _explain(self, groups: dict[str, list[Vote]], reasons: dict[str, str]) -> None:
        """Says for each counted signer what it signed, and where that differs from the content
        with the most signatures (the most conservative of those on a tie)."""
        reference = min(groups.values(), key=lambda votes: (-len(votes), proposal_order(votes[0].content)))
        names = ", ".join(v.signer for v in reference)
        for votes in groups.values():
            for v in votes:
                if votes is reference:
                    reasons[v.url] = f"signed as {v.signer}"
                else:
                    changed = changed_fields(v.content, reference[0].content)
                    reasons[v.url] = (
                        f"signed as {v.signer} other content than {names}: "
                        + "; ".join(changed[:4])
                        + (" …" if len(changed) > 4 else "")
                    )

    def _cosign(
        self,
        endpoint: str,
        body: dict[str, Any],
        answers: list[Answer],
        groups: dict[str, list[Vote]],
        reasons: dict[str, str],
    ) -> dict[str, Any] | None:
        """Proposes each signed content, most conservative first, to the signers that did not sign
        it; returns the first one that `threshold` distinct authorized signers then signed. A
        proposal honest signers refuse (beyond the tolerance) only costs one round."""
        reachable = [url for url, status, _ in answers if status != 0]
        for votes in sorted(groups.values(), key=lambda votes: proposal_order(votes[0].content)):
            votes = list(votes)
            proposal = votes[0].content
            asked = [u for u in reachable if u not in {v.url for v in votes}]
            if len(votes) + len(asked) < self.threshold:
                continue
            floor = body["min_block"] if isinstance(body.get("min_block"), int) else 0
            newest = max([v.block for v in votes] + [floor])
            request = {"endpoint": endpoint, "request": {**body, "min_block": newest}, "proposal": proposal}
            if endpoint == "commitment":
                numbers = self._commitment_numbers(votes[0].url, proposal)
                if numbers is None:
                    continue
                request["numbers"] = numbers
            proposer = ", ".join(v.signer for v in votes)
            for url, status, data in self._fan_out("/v1/cosign", request, asked):
                if status != 200:
                    note = f"asked to co-sign {proposer}'s proposal: {data.get('error') or f'HTTP {status}'}"
                else:
                    vote = self._vote(url, data, proposal)
                    if isinstance(vote, Vote) and all(v.signer != vote.signer for v in votes):
                        votes.append(vote)
                        continue
                    note = f"co-signature of {proposer}'s proposal not counted: " + (
                        vote if isinstance(vote, str) else f"repeats {vote.signer}"
                    )
                reasons[url] = f"{reasons[url]}; {note}" if url in reasons else note
            if len(votes) >= self.threshold:
                event(log, "co-signed", endpoint=endpoint, proposer=proposer, signers=[v.signer for v in votes])
                return self._result(votes, "cosigned")
        return None

    def _commitment_numbers(self, url: str, proposal: Content) -> dict[str, Any] | None:
        """The proposer's per-account numbers behind a proposed root (for the co-signers to check)."""
        try:
            root = proposal["items"]["commitment"]["message"]["root"]
            status, data = _http("GET", f"{url}/v1/commitments/{root}/numbers", None, self.timeout)
        except (KeyError, TypeError, urllib.error.URLError, TimeoutError, ConnectionError, OSError, ValueError):
            return None
        numbers = data.get("numbers") if status == 200 else None
        return numbers if isinstance(numbers, dict) else None

    def forward(self, path: str) -> dict[str, Any]:
        errors = {}
        missing: tuple[int, str] | None = None
        for url in self.urls:
            try:
                status, data = _http("GET", url + path, None, self.timeout)
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                errors[url] = f"unreachable: {getattr(err, 'reason', err)}"
                continue
            if status == 200:
                return data
            if status == 404 and path.startswith("/v1/commitments/"):
                # only the signers that built or co-signed a commitment hold it: ask the next
                errors[url] = data.get("error", "HTTP 404")
                missing = (status, errors[url])
                continue
            if 400 <= status < 500:
                raise HttpError(status, data.get("error", "rejected"))
            errors[url] = data.get("error", f"HTTP {status}")
        if missing is not None:
            raise HttpError(missing[0], missing[1], signers=errors)
        raise HttpError(503, "no signer answered", signers=errors)

    def health(self) -> dict[str, Any]:
        states = {}
        for url in self.urls:
            try:
                status, data = _http("GET", url + "/health", None, 2.0)
                states[url] = data if status == 200 else {"status": f"HTTP {status}"}
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
                states[url] = {"status": f"unreachable: {getattr(err, 'reason', err)}"}
        up = sum(1 for s in states.values() if s.get("status") == "ok")
        return {
            "status": "ok" if up >= self.threshold else "degraded",
            "signers_up": up,
            "threshold": self.threshold,
            "signers": states,
        }


def gateway_server(gateway: Gateway, host: str, port: int, rate: float = 200.0) -> JsonServer:
    metrics = Metrics("gateway")
    server = JsonServer(host, port, metrics.registry, rate=rate, burst=int(rate * 2))
    server.route("GET", "/health", lambda b, p, q: gateway.health())
    server.route("GET", "/openapi.json", lambda b, p, q: openapi("DPRE risk oracle (gateway)"))
    server.route(
        "GET",
        "/v1/accounts/{address}",
        lambda b, p, q: _timed(metrics, "account", lambda: gateway.forward(f"/v1/accounts/{p['address']}")),
    )
    server.route(
        "GET",
        "/v1/risk/accounts",
        lambda b, p, q: _timed(
            metrics, "risk", lambda: gateway.forward("/v1/risk/accounts?max_ratio=" + q.get("max_ratio", ["1.25"])[0])
        ),
    )
    server.route("GET", "/v1/marks", lambda b, p, q: _timed(metrics, "marks", lambda: gateway.forward("/v1/marks")))
    server.route(
        "GET",
        "/v1/commitments/{root}/proofs/{account}",
        lambda b, p, q: _timed(
            metrics, "commitment_proof", lambda: gateway.forward(f"/v1/commitments/{p['root']}/proofs/{p['account']}")
        ),
    )
    server.route(
        "GET",
        "/v1/commitments/{root}/proofs",
        lambda b, p, q: _timed(
            metrics,
            "commitment_proof",
            lambda: gateway.forward(
                f"/v1/commitments/{p['root']}/proofs?accounts={urllib.parse.quote(q.get('accounts', [''])[0], safe=',')}"
            ),
        ),
    )

    def attest_route(name: str) -> Callable[[Any, Any, Any], Any]:
        return lambda b, p, q: _timed(metrics, name, lambda: gateway.attest(name, b))

    for name in ATTEST_ENDPOINTS:
        server.route("POST", f"/v1/attest/{name}", attest_route(name))
    event(log, "gateway configured", signers=gateway.urls, threshold=gateway.threshold)
    return server

"""HTTP APIs: a signer (one Oracle, one key) and the gateway that combines m-of-n signers.

Both are FastAPI applications on the common HTTP layer (offchain/ops/web.py: limits, errors,
metrics, logs) and describe themselves at /openapi.json and /docs. Request bodies are the strict
models of offchain/oracle/schemas.py. Traders fetch withdrawal and trade attestations; keepers
fetch liquidation, ADL and settlement attestations and the at-risk list.
"""

import inspect
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from eth_utils import to_checksum_address
from fastapi import FastAPI, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel, ValidationError

from offchain.attest.eip712 import Domain, signer_of
from offchain.attest.messages import from_wire, to_wire
from offchain.ops.logs import event
from offchain.ops.web import HttpError, HttpLimits, create_app, ok, validation_message
from offchain.oracle.core import Memo, Oracle, SignedItem
from offchain.oracle.cosign import Content, changed_fields, content_key, content_of, differences, proposal_order
from offchain.oracle.schemas import ATTEST_MODELS, Account, AccountList, CosignRequest, MaxRatio, Root

log = logging.getLogger("oracle.http")

ATTEST_ENDPOINTS = tuple(ATTEST_MODELS)

API_DESCRIPTION = (
    "Amounts are integers in WAD (18 decimals), as JSON integers or decimal strings; sizes are signed "
    "WAD contracts; times are unix seconds; addresses 0x-hex (EIP-55 checksummed when mixed-case). "
    "Field names are snake_case in requests, the contracts' camelCase inside signed messages. Every "
    "error is {error, request_id}: 4xx a client mistake naming the field, 503 retry later (Retry-After)."
)


class ErrorBody(BaseModel):
    error: str
    request_id: str


ATTEST_SUMMARIES = {
    "margin": "Attestation of an account's current portfolio (for withdrawals)",
    "trade": "Post-trade attestations of both sides of a fill of a maker's signed order",
    "liquidation": "Attestations of accounts to liquidate and of the liquidator after taking the slices",
    "adl": "ADL plan of a bankrupt account: marks, ranked queues (Merkle roots) and fills",
    "settlement": "Settlement price of an underlying at a listed, passed expiry",
    "heartbeat": "The signer's newest market snapshot time, for postSnapshot",
    "commitment": "One commitment (a StandardMerkleTree root) to every account's margin at the snapshot, "
    "for SnapshotCommitments.postCommitment; extra.left_out lists accounts not committed",
}

ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "a malformed request; `error` names the field", "model": ErrorBody},
    404: {"description": "no such account, commitment or route", "model": ErrorBody},
    409: {
        "description": "well-formed but impossible now (not liquidatable, not expired, over a cap)",
        "model": ErrorBody,
    },
    503: {
        "description": "cannot answer now (market data, node or signers unavailable): retry later",
        "model": ErrorBody,
    },
}


def _attest_routes(app: FastAPI, handle: Callable[[str, dict[str, Any]], dict[str, Any]]) -> None:
    """POST /v1/attest/<name> for each request model, answered by handle(name, normalised body)."""
    for name, model in ATTEST_MODELS.items():

        def route(body: Any, name: str = name) -> Response:
            return ok(handle(name, body.body()))

        # FastAPI reads the body's model from the signature: give each route its own
        route.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=model)]
        )
        app.post(f"/v1/attest/{name}", summary=ATTEST_SUMMARIES[name], responses=ERRORS, name=f"attest_{name}")(route)


def _metrics_registry(oracle: Oracle) -> CollectorRegistry:
    r = CollectorRegistry()
    Gauge("dpre_synced_block", "Last block applied", registry=r).set_function(lambda: float(oracle.state.block))
    Gauge("dpre_block_lag", "Head less confirmations less the synced block", registry=r).set_function(
        lambda: float(oracle.lag())
    )
    Gauge("dpre_reorgs", "Chain reorganisations the replica rolled back", registry=r).set_function(
        lambda: float(oracle.state.reorgs)
    )
    Gauge(
        "dpre_diverged_accounts", "Accounts whose replica differs from the chain (no attestation for them)", registry=r
    ).set_function(lambda: float(len(oracle.state.diverged)))
    Gauge("dpre_hash_mismatches", "State hash mismatches seen since start", registry=r).set_function(
        lambda: float(oracle.state.hash_mismatches)
    )
    return r


def signer_app(oracle: Oracle, limits: HttpLimits) -> FastAPI:
    app = create_app("DPRE risk oracle (signer)", _metrics_registry(oracle), limits, description=API_DESCRIPTION)

    @app.get(
        "/health",
        summary="Replica, market data and parameters; 503 when the node is unreachable or the key is "
        "not in the on-chain signer set",
    )
    def health() -> Response:
        report = oracle.health()
        if not report["authorized"]:
            raise HttpError(503, "this signer's key is not in the on-chain signer set", **report)
        return ok(report)

    @app.get("/v1/accounts/{address}", summary="An account's portfolio, value, IM and MM", responses=ERRORS)
    def account(address: Annotated[Account, PathParam()]) -> Response:
        return ok(oracle.account_report(address))

    @app.get("/v1/risk/accounts", summary="Accounts with equity / MM below max_ratio", responses=ERRORS)
    def risk(max_ratio: Annotated[MaxRatio, Query()] = 1.25) -> Response:
        return ok(oracle.risk_accounts(max_ratio))

    @app.get("/v1/marks", summary="Each instrument's mark at the signer's snapshot", responses=ERRORS)
    def marks() -> Response:
        return ok(oracle.marks())

    @app.get("/v1/replica", summary="The replica's block, hash and digest (with detail: every account)")
    def replica(detail: bool = False) -> Response:
        return ok(oracle.replica(detail))

    _attest_routes(app, lambda name, body: getattr(oracle, f"attest_{name}")(body))

    @app.post(
        "/v1/cosign",
        summary="Signs another signer's proposal for a request if it matches this signer's own answer "
        "(identical but for float-derived numbers within the tolerance); 409 lists the differences",
        responses=ERRORS,
    )
    def cosign_route(body: CosignRequest) -> Response:
        return ok(cosign(oracle, body))

    @app.get(
        "/v1/commitments/{root}/numbers",
        summary="(value, IM, MM) per account of a commitment this signer built, for co-signers to check",
        responses=ERRORS,
    )
    def numbers(root: Annotated[Root, PathParam()]) -> Response:
        return ok(oracle.commitment_numbers(root))

    @app.get("/v1/commitments/{root}/proofs/{account}", summary="One account's leaf and proof", responses=ERRORS)
    def proof(root: Annotated[Root, PathParam()], account: Annotated[Account, PathParam()]) -> Response:
        return ok(oracle.commitment_proof(root, account))

    @app.get("/v1/commitments/{root}/proofs", summary="Leaves and one multiproof for accounts", responses=ERRORS)
    def proofs(root: Annotated[Root, PathParam()], accounts: Annotated[AccountList, Query()]) -> Response:
        return ok(oracle.commitment_proofs(root, accounts))

    return app


def cosign(oracle: Oracle, body: CosignRequest) -> dict[str, Any]:
    """Signs another signer's proposal if this signer, answering the same request itself with the
    same handler, gets the same content up to float noise (offchain/oracle/cosign.py)."""
    endpoint, proposal = body.endpoint, body.proposal
    try:  # the request the proposal answers passes the same model as a direct one
        request = ATTEST_MODELS[endpoint].model_validate(body.request).body()
    except ValidationError as err:
        raise HttpError(400, "request." + validation_message(list(err.errors()))) from None
    if not isinstance(proposal.get("items"), dict):
        raise HttpError(400, "proposal: {items: {name: {type, message}}, extra}")
    _signed_by_another_signer(oracle, proposal["items"], body.signatures)
    if endpoint == "commitment":
        # a whole-book root differs with any one number: the proposer's numbers come along
        try:
            root = bytes.fromhex(str(proposal["items"]["commitment"]["message"]["root"]).removeprefix("0x"))
        except (KeyError, TypeError, ValueError):
            raise HttpError(400, "proposal: a commitment item with a root") from None
        own = oracle.cosign_commitment(request, root, body.numbers)
    else:
        own = getattr(oracle, f"attest_{endpoint}")(request)
    problems = differences(proposal, content_of(own))
    if problems:
        raise HttpError(409, "refusing to co-sign: " + "; ".join(problems), differences=problems)
    try:
        items = {k: SignedItem(from_wire(v)).wire(oracle.signer, oracle.domain) for k, v in proposal["items"].items()}
    except (KeyError, TypeError, ValueError) as err:
        raise HttpError(400, f"proposal: malformed item ({str(err)[:120]})") from None
    event(log, "co-signed", endpoint=endpoint, block=own["block"])
    return {"block": own["block"], "signer": oracle.signer.address, "items": items, "extra": own["extra"]}


def _signed_by_another_signer(oracle: Oracle, items: dict[str, Any], signatures: dict[str, str]) -> None:
    """A proposal is co-signed only if another authorized signer signed every item of it: the
    tolerance reconciles honest signers a rounding step apart, and nobody else may use it to
    obtain a signature over numbers no signer computed."""
    if set(signatures) != set(items):
        raise HttpError(400, "signatures: one proposer signature per proposal item is required")
    proposers = set()
    for name, wire in items.items():
        try:
            item = from_wire(wire)
            sig = bytes.fromhex(str(signatures[name]).removeprefix("0x"))
            proposers.add(to_checksum_address(signer_of(oracle.domain, item, sig)))
        except Exception:
            raise HttpError(400, f"proposal.items.{name[:40]}: malformed item or signature") from None
    if len(proposers) != 1:
        raise HttpError(409, "refusing to co-sign: the proposal's items are signed by different keys")
    proposer = proposers.pop()
    if proposer == oracle.signer.address or not oracle.is_signer(proposer):
        raise HttpError(409, "refusing to co-sign: the proposal is not signed by another authorized signer")


# ---------------------------------------------------------------------------------- gateway


Answer = tuple[str, int, dict[str, Any]]  # (signer URL, HTTP status or 0 if unreachable, JSON body)

MAX_ITEMS = 64  # a liquidation's 50 accounts and its liquidator is the largest answer

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
    """Asks the first `threshold` signers of its list, and the others when those do not agree or
    answer, for each attestation request, and returns a content that at least `threshold` distinct
    authorized signers signed, with exactly `threshold` signatures in ascending signer order.

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
        # what answers name a signer by: its seat in --signers (its URL is the operator's, not the public's)
        self.labels = {url: f"signer{i + 1}" for i, url in enumerate(signer_urls)}
        # each signer's calls on threads of its own: one that stalls exhausts only its own
        self.pools = {url: ThreadPoolExecutor(max_workers=8, thread_name_prefix="signer") for url in signer_urls}
        self._recovered = Memo(8192)
        self._down_until: dict[str, float] = {}  # signers unreachable lately, asked last
        self._health: tuple[float, dict[str, dict[str, Any]]] | None = None
        self._health_lock = threading.Lock()
        # keep-alive connections to the signers, shared by every request thread
        self.http = httpx.Client(
            timeout=timeout, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )

    def _recover(self, item: Any, signature: bytes) -> str:
        """The address that signed `item`, remembered: the signers answer a flood of the same
        requests with the same signatures, recovered once."""
        return self._recovered.get(
            (item, signature), lambda: to_checksum_address(signer_of(self.domain, item, signature))
        )

    def _http(
        self, method: str, url: str, body: dict[str, Any] | None, timeout: float, max_bytes: int
    ) -> tuple[int, dict[str, Any]]:
        """(status, JSON object) of one call to a signer, read raw (no decompression) within
        `max_bytes` and `timeout` in all; raises httpx.TransportError when the signer is
        unreachable or too slow, ValueError when its answer is too large or not a JSON object."""
        deadline = time.monotonic() + timeout
        headers = {"Accept-Encoding": "identity"}
        with self.http.stream(method, url, json=body, timeout=timeout, headers=headers) as response:
            chunks, size = [], 0
            for chunk in response.iter_raw():
                size += len(chunk)
                if size > max_bytes:
                    raise ValueError(f"answer over {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("answer not complete in time")
                chunks.append(chunk)
        raw = b"".join(chunks)
        data = json.loads(raw) if raw else {}
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return response.status_code, data

    def _ask(
        self,
        urls: list[str],
        method: str,
        path: str,
        body: dict[str, Any] | None,
        timeout: float | None = None,
        max_bytes: int = 1 << 20,
    ) -> list[Answer]:
        """One call to each of `urls` at once, each on that signer's own threads and within one
        deadline: a signer that stalls or answers nonsense is "unreachable" or "malformed" and
        holds up neither the others nor later requests to them."""
        wait = timeout or self.timeout

        def one(url: str) -> Answer:
            try:
                status, data = self._http(method, url + path, body, wait, max_bytes)
            except httpx.TransportError as err:
                self._down_until[url] = time.monotonic() + 5.0
                return url, 0, {"error": f"unreachable: {type(err).__name__}"}
            except (httpx.HTTPError, ValueError):  # undecodable, oversized, not a JSON object
                return url, 502, {"error": "malformed answer"}
            return url, status, data

        futures = [(url, self.pools[url].submit(one, url)) for url in urls]
        deadline = time.monotonic() + wait + 0.5
        answers: list[Answer] = []
        for url, future in futures:
            try:
                answers.append(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except FutureTimeout:
                future.cancel()
                self._down_until[url] = time.monotonic() + 5.0
                answers.append((url, 0, {"error": "unreachable: no answer in time"}))
        return answers

    def _fan_out(self, path: str, body: dict[str, Any], urls: list[str] | None = None) -> list[Answer]:
        return self._ask(self.urls if urls is None else urls, "POST", path, body)

    def _first_seats(self) -> list[str]:
        """The `threshold` signers asked first: the first in the configured order (so an answer
        carries the same signatures, and a transaction the same gas, whoever answered first),
        skipping those unreachable in the last few seconds."""
        now = time.monotonic()
        up = [u for u in self.urls if self._down_until.get(u, 0.0) <= now]
        return (up + [u for u in self.urls if u not in up])[: self.threshold]

    def attest(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        path = f"/v1/attest/{endpoint}"
        # `threshold` signers first: when they agree (nearly always) the others are spared the
        # work; when they do not, or one fails, the others are asked too
        first = self._first_seats()
        answers = self._fan_out(path, body, first)
        groups, reasons = self._tally(answers)
        result = self._agreed(groups)
        if result is None and len(first) < len(self.urls):
            answers += self._fan_out(path, body, [u for u in self.urls if u not in first])
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
        event(log, "refusing to attest", logging.WARNING, endpoint=endpoint, signers=reasons)
        raise HttpError(
            503,
            f"refusing to attest: {ok} of {len(self.urls)} signers answered, "
            f"{self.threshold} identical signatures are required"
            + (" and no proposal was co-signed by enough signers" if groups else "")
            + (f" (signers say: {common})" if common else ""),
            signers=self._labelled(reasons),
        )

    def _labelled(self, by_url: dict[str, Any]) -> dict[str, Any]:
        return {self.labels.get(url, "signer"): value for url, value in by_url.items()}

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
            if not wire or set(items) != set(wire) or len(items) > MAX_ITEMS:
                return "answered with no items, too many or other items than asked"
            parsed = {k: from_wire(v) for k, v in wire.items()}
            signatures = {k: bytes.fromhex(str(items[k]["signature"]).removeprefix("0x")) for k in parsed}
            for sig in signatures.values():
                # the contract's ECDSA takes 65-byte low-s records only: anything else would sink the bundle
                if len(sig) != 65 or int.from_bytes(sig[32:64], "big") > _SECP256K1_HALF_N or sig[64] not in (27, 28):
                    return "malformed signature (not a 65-byte low-s record)"
            recovered = {self._recover(parsed[k], signatures[k]) for k in parsed}
            block = data.get("block", 0)
            if isinstance(block, bool) or not isinstance(block, int) or not 0 <= block < 2**63:
                return "malformed answer (block)"
            extra = data.get("extra") or {}
        except Exception as err:  # anything a faulty or hostile signer sends: no vote, and say why
            return f"malformed answer ({type(err).__name__})"
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
            request = {
                "endpoint": endpoint,
                "request": {**body, "min_block": newest},
                "proposal": proposal,
                # the proposer's own signatures: a signer co-signs only what another authorized signer signed
                "signatures": {k: "0x" + sig.hex() for k, sig in votes[0].signatures.items()},
            }
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
            root = str(proposal["items"]["commitment"]["message"]["root"])
        except (KeyError, TypeError):
            return None
        # a whole book's numbers: up to ~200 bytes an account
        ((_, status, data),) = self._ask([url], "GET", f"/v1/commitments/{root}/numbers", None, max_bytes=256 << 20)
        numbers = data.get("numbers") if status == 200 else None
        return numbers if isinstance(numbers, dict) else None

    def forward(self, path: str) -> dict[str, Any]:
        errors = {}
        missing: tuple[int, str] | None = None
        for url in self.urls:
            ((_, status, data),) = self._ask([url], "GET", path, None, max_bytes=64 << 20)
            if status == 200:
                return data
            if status == 404 and path.startswith("/v1/commitments/"):
                # only the signers that built or co-signed a commitment hold it: ask the next
                errors[url] = str(data.get("error", "HTTP 404"))
                missing = (status, errors[url])
                continue
            if 400 <= status < 500:
                raise HttpError(status, str(data.get("error", "rejected")))
            errors[url] = str(data.get("error", f"HTTP {status}"))
        if missing is not None:
            raise HttpError(missing[0], missing[1], signers=self._labelled(errors))
        event(log, "no signer answered", logging.WARNING, path=path.split("?")[0], signers=errors)
        raise HttpError(503, "no signer answered", signers=self._labelled(errors))

    def health(self) -> dict[str, Any]:
        """Each signer's health; HttpError 503 when fewer than the threshold are up (nothing can
        be attested), "degraded" when some are down but the threshold still holds."""

        def state(status: int, data: dict[str, Any]) -> dict[str, Any]:
            if status == 200:
                return data
            if status == 0:
                return {"status": str(data.get("error", "unreachable"))}
            return {"status": f"HTTP {status}", "error": str(data.get("error", ""))[:300]}

        with self._health_lock:  # a flood of /health costs one round of signer probes a second
            cached = self._health
            if cached is None or time.monotonic() - cached[0] > 1.0:
                probes = self._ask(self.urls, "GET", "/health", None, timeout=2.0)
                cached = self._health = (time.monotonic(), {url: state(st, data) for url, st, data in probes})
        states = cached[1]
        up = sum(1 for s in states.values() if s.get("status") == "ok")
        report = {
            "status": "ok" if up == len(self.urls) else "degraded",
            "signers_up": up,
            "threshold": self.threshold,
            "signers": self._labelled(states),
        }
        if up < self.threshold:
            raise HttpError(503, f"{up} of {len(self.urls)} signers up, {self.threshold} required", **report)
        return report


def gateway_app(gateway: Gateway, limits: HttpLimits) -> FastAPI:
    app = create_app("DPRE risk oracle (gateway)", CollectorRegistry(), limits, description=API_DESCRIPTION)

    @app.get("/health", summary="The signers' health; 503 when fewer than the threshold are up")
    def health() -> Response:
        return ok(gateway.health())

    @app.get("/v1/accounts/{address}", summary="An account's portfolio, value, IM and MM", responses=ERRORS)
    def account(address: Annotated[Account, PathParam()]) -> Response:
        return ok(gateway.forward(f"/v1/accounts/{address}"))

    @app.get("/v1/risk/accounts", summary="Accounts with equity / MM below max_ratio", responses=ERRORS)
    def risk(max_ratio: Annotated[MaxRatio, Query()] = 1.25) -> Response:
        return ok(gateway.forward(f"/v1/risk/accounts?max_ratio={max_ratio!r}"))

    @app.get("/v1/marks", summary="Each instrument's mark at a signer's snapshot", responses=ERRORS)
    def marks() -> Response:
        return ok(gateway.forward("/v1/marks"))

    @app.get("/v1/commitments/{root}/proofs/{account}", summary="One account's leaf and proof", responses=ERRORS)
    def proof(root: Annotated[Root, PathParam()], account: Annotated[Account, PathParam()]) -> Response:
        return ok(gateway.forward(f"/v1/commitments/{root}/proofs/{account}"))

    @app.get("/v1/commitments/{root}/proofs", summary="Leaves and one multiproof for accounts", responses=ERRORS)
    def proofs(root: Annotated[Root, PathParam()], accounts: Annotated[AccountList, Query()]) -> Response:
        return ok(gateway.forward(f"/v1/commitments/{root}/proofs?accounts={urllib.parse.quote(accounts, safe=',')}"))

    _attest_routes(app, gateway.attest)
    event(log, "gateway configured", signers=gateway.urls, threshold=gateway.threshold)
    return app

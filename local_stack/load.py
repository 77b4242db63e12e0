"""A load workload for the local stack: many accounts, signed webhooks as Nylas sends them, posted concurrently.

Shared by tests/load (which asserts what the pipeline made of it) and bench/bench_e2e.py (which times it).
The webhooks are a mix of v3 notifications and v2 deltas over many accounts of several organisation
domains and free-mail; a fifth of the posts are exact repeats of earlier ones (Nylas retries), and
some accounts' recovery is posted before the failure it recovers from.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import requests

from account_doctor.models import AccountEvent
from account_doctor.webhook import normalize_v2, normalize_v3, sign
from local_stack.payloads import json_body, v2_delta
from local_stack.scenarios import Scenario, Webhook, load_simulator, v3_failure, v3_recovery
from local_stack.stack import RunningStack

ORG_DOMAINS = tuple(f"org{n:02d}.example" for n in range(12))
FREE_MAIL = ("gmail.com", "yahoo.com", "outlook.com", "hotmail.com")


@dataclass
class Workload:
    accounts: list[Scenario]
    posts: list[Webhook]  # in sending order, repeats included
    failures: dict[tuple[str, str], AccountEvent]  # every distinct failure event, by (account_id, event_id)
    recovered_first: list[Scenario]  # accounts whose recovery is posted before their failure
    duplicates: int

    @property
    def distinct_posts(self) -> int:
        return len(self.posts) - self.duplicates


def _account(index: int, rng: random.Random, recovers: bool, prefix: str, own_domain: bool) -> Scenario:
    api_version = "v2" if index % 3 == 0 else "v3"
    half = index // 2
    if own_domain:
        domain = f"{prefix}org{index:05d}.example"
    else:
        domain = ORG_DOMAINS[half % len(ORG_DOMAINS)] if index % 2 else FREE_MAIL[half % len(FREE_MAIL)]
    if domain.startswith(("gmail", "org0")) or (domain.startswith("org") and index % 4 == 1):
        provider = "google" if api_version == "v3" else "gmail"
    elif domain.startswith("yahoo"):
        provider = "yahoo"
    else:
        provider = "microsoft" if api_version == "v3" else "office365"
    return Scenario(
        account_id=f"{prefix}{api_version}-{index:05d}",
        api_version=api_version,  # type: ignore[arg-type]
        provider=provider,
        email=f"{prefix}user{index:05d}@{domain}",
        trigger="grant.expired" if api_version == "v3" else "account.invalid",
        expected_cause="recovered" if recovers else "",
        story="load test account",
        status=("valid" if api_version == "v3" else "running") if recovers else "invalid",
        authenticated_days_ago=rng.choice((3.0, 7.0, 40.0, 100.0)),
    )


def _failure(account: Scenario, occurred: float) -> bytes:
    if account.api_version == "v3":
        payload = v3_failure(account, occurred=occurred, now=time.time())
    else:
        payload = {"deltas": [v2_delta(account.trigger, account_id=account.account_id, occurred=occurred)]}
    return json_body(payload)


def _recovery(account: Scenario, occurred: float) -> bytes:
    if account.api_version == "v3":
        payload = v3_recovery(account, occurred=occurred)
    else:
        payload = {"deltas": [v2_delta("account.running", account_id=account.account_id, occurred=occurred)]}
    return json_body(payload)


def _events(webhook: Webhook) -> tuple[AccountEvent, ...]:
    payload = json.loads(webhook.body)
    return (normalize_v3(payload) if "specversion" in payload else normalize_v2(payload)).events


def build(
    total: int,
    *,
    seed: int = 6,
    duplicate_share: float = 0.2,
    mixed: bool = True,
    own_domains: bool = False,
    prefix: str = "load-",
    now: float | None = None,
) -> Workload:
    """`total` posts: (1 - duplicate_share) of them distinct, the rest exact repeats posted later.

    Unless `mixed` is False (then: one failure per account, nothing else), every tenth account's
    recovery is posted before its failure, and every tenth fails a second time an hour earlier.
    With `own_domains`, every account is alone in its organisation domain: no domain cluster forms.
    """
    rng = random.Random(seed)
    now = time.time() if now is None else now
    duplicates = int(total * duplicate_share)
    distinct: list[Webhook] = []
    accounts: list[Scenario] = []
    recovered_first: list[Scenario] = []
    index = 0
    while len(distinct) < total - duplicates:
        recovers = mixed and index % 10 == 0
        account = _account(index, rng, recovers, prefix, own_domains)
        accounts.append(account)
        failed = now - rng.uniform(0, 600)
        signed_with: Literal["webhook_secret", "client_secret"] = (
            "webhook_secret" if account.api_version == "v3" else "client_secret"
        )
        if recovers:
            # Out of order: the recovery is posted before the failure it follows.
            recovered_first.append(account)
            distinct.append(Webhook(_recovery(account, failed + 1), signed_with, [account.account_id]))
            distinct.append(Webhook(_failure(account, failed), signed_with, [account.account_id]))
        else:
            distinct.append(Webhook(_failure(account, failed), signed_with, [account.account_id]))
            if mixed and index % 10 == 1:  # the same account fails again an hour later: within the email cooldown
                distinct.append(Webhook(_failure(account, failed - 3600), signed_with, [account.account_id]))
        index += 1
    distinct = distinct[: total - duplicates]
    # Shuffle, keeping each account's posts in their order (so a recovery still goes before its failure).
    queues: dict[str, list[Webhook]] = {}
    for webhook in distinct:
        queues.setdefault(webhook.accounts[0], []).append(webhook)
    order = [account for account, hooks in queues.items() for _ in hooks]
    rng.shuffle(order)
    posts = [queues[account].pop(0) for account in order]
    # Nylas retries: exact repeats of earlier posts, inserted somewhere after the original.
    for _ in range(duplicates):
        original = rng.randrange(len(posts))
        posts.insert(rng.randint(original + 1, len(posts)), posts[original])
    used = {webhook.accounts[0] for webhook in posts}
    failures = {
        (event.account_id, event.event_id): event
        for webhook in posts
        for event in _events(webhook)
        if event.kind == "failure"
    }
    return Workload(
        accounts=[a for a in accounts if a.account_id in used],
        posts=posts,
        failures=failures,
        recovered_first=[a for a in recovered_first if a.account_id in used],
        duplicates=duplicates,
    )


def register(stack: RunningStack, workload: Workload) -> None:
    """Gives the Nylas simulator every account the workload's webhooks name."""
    load_simulator(stack.simulator, workload.accounts)


@dataclass
class PostResults:
    statuses: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)  # seconds, one per post
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.statuses) / self.elapsed if self.elapsed else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def post_all(
    url: str,
    requests_: Sequence[tuple[bytes, dict[str, str]]],
    *,
    workers: int = 8,
    timeout: float = 30,
    method: str = "POST",
) -> PostResults:
    """Sends every (body, headers) to `url` from `workers` threads, each with its own keep-alive session."""
    results = PostResults()
    lock = threading.Lock()
    local = threading.local()

    def send(item: tuple[bytes, dict[str, str]]) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        body, headers = item
        start = time.perf_counter()
        try:
            response = local.session.request(method, url, data=body or None, headers=headers, timeout=timeout)
            status, error = response.status_code, ""
        except requests.RequestException as exc:
            status, error = 0, f"{type(exc).__name__}: {exc}"
        took = time.perf_counter() - start
        with lock:
            results.statuses.append(status)
            results.latencies.append(took)
            if error:
                results.errors.append(error)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="load") as pool:
        list(pool.map(send, requests_))
    results.elapsed = time.perf_counter() - start
    return results


def signed(stack: RunningStack, webhooks: Sequence[Webhook]) -> list[tuple[bytes, dict[str, str]]]:
    """Each webhook's body with the headers Nylas sends: JSON, signed with the API version's secret."""
    return [
        (w.body, {"Content-Type": "application/json", "X-Nylas-Signature": sign(w.body, stack.secret(w.signed_with))})
        for w in webhooks
    ]


def post_workload(stack: RunningStack, workload: Workload, *, workers: int = 8) -> PostResults:
    return post_all(stack.webhook_url, signed(stack, workload.posts), workers=workers)


def wait_for(condition: Callable[[], Any], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())

"""Rate limits: cost-weighted budgets per client and per JWT subject, 429 with Retry-After and
the IETF RateLimit headers, `rateLimit` in the schema, one budget across two gateway
instances on Redis, and a local budget (never a failed request) when Redis is gone."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from redis.asyncio import Redis

from adapters.rate_limiter import RedisGcra
from gateway.app import create_app
from gateway.auth import mint_token
from gateway.lifespan import Services, open_services
from gateway.rate_limits import RateLimiter, RateLimitSettings
from gateway.serving import worker_environment
from gateway.settings import Settings
from resolvers.principal import Principal
from tests.fixtures.cache import REDIS_URL, reachable_gcra

PAGE = "query Page($n: Int) { customers(first: $n) { edges { node { id } } } }"
LIMIT = "{ rateLimit { limit cost remaining resetAt } }"


@asynccontextmanager
async def app_with(
    settings: Settings, services: Services, limiter: RateLimiter
) -> AsyncIterator[httpx.AsyncClient]:
    chosen = dataclasses.replace(settings, rate_limits=limiter.settings)
    app = create_app(chosen, dataclasses.replace(services, settings=chosen, rate_limiter=limiter))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
        yield client


async def redis_limiter(prefix: str, settings: RateLimitSettings) -> RateLimiter:
    return RateLimiter(settings, await reachable_gcra(prefix))


def ask(client: httpx.AsyncClient, key: str, query: str, **variables: object) -> object:
    return client.post(
        "/graphql", json={"query": query, "variables": variables},
        headers={"authorization": f"Bearer {key}"},
    )  # fmt: skip


async def test_a_client_over_its_budget_gets_429_and_nothing_runs(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    issued = await services.clients.create(
        tenant_id=tenant_id, name="busy", kind="analyst", scopes=["ledger:read"], rate_limit=30
    )
    limiter = RateLimiter(RateLimitSettings())
    async with app_with(settings, services, limiter) as client:
        statuses = []
        for _ in range(4):  # 11 points each (page + 10 customers): two fit in 30
            response = await ask(client, issued.key, PAGE, n=10)  # type: ignore[misc]
            statuses.append(response.status_code)
            assert response.headers["ratelimit-policy"] == '"cost";q=30;w=60'
            assert response.headers["ratelimit"].startswith('"cost";r=')
        assert statuses == [200, 200, 429, 429]
        body = response.json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert "data" not in body
        # 8 points left; 11 fit again after 3 points refill at 0.5/s: 6 seconds.
        assert response.headers["retry-after"] == "6"
        assert response.headers["ratelimit"] == '"cost";r=8;t=44'
        assert limiter.metrics.rejected == 2
        # A cheap operation still fits in what is left.
        cheap = await ask(client, issued.key, LIMIT)  # type: ignore[misc]
        assert cheap.status_code == 200
        assert cheap.json()["data"]["rateLimit"]["remaining"] == 7


async def test_rate_limit_field_reports_the_callers_budget(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    limiter = RateLimiter(RateLimitSettings(limits={"first_party": 100}))
    token = mint_token(settings, tenant_id=tenant_id, scopes=["ledger:read"], subject="ann")
    other = mint_token(settings, tenant_id=tenant_id, scopes=["ledger:read"], subject="bob")
    async with app_with(settings, services, limiter) as client:
        await ask(client, token, PAGE, n=20)  # type: ignore[misc]
        first = (await ask(client, token, LIMIT)).json()["data"]["rateLimit"]  # type: ignore[misc]
        assert first["limit"] == 100
        assert first["cost"] == 1  # the field costs nothing; every operation at least 1
        assert first["remaining"] == 100 - 21 - 1
        assert first["resetAt"].endswith("Z") or "+00:00" in first["resetAt"]
        # Another subject of the same tenant has its own budget.
        theirs = (await ask(client, other, LIMIT)).json()["data"]["rateLimit"]  # type: ignore[misc]
        assert theirs["remaining"] == 99


async def test_the_rate_limit_field_goes_to_the_resolvers_on_every_path(
    gql: object, reference_gql: object, tenant_id: int
) -> None:
    for client in (gql, reference_gql):
        body = await client.post(LIMIT, tenant_id=tenant_id)  # type: ignore[attr-defined]
        assert body["data"]["rateLimit"]["cost"] == 1


async def test_two_gateways_on_one_redis_share_one_budget(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    prefix = f"fg-test-rl-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    policy = RateLimitSettings()
    analyst = await services.clients.create(
        tenant_id=tenant_id, name="shared-analyst", kind="analyst", scopes=["ledger:read"],
        rate_limit=50,
    )  # fmt: skip
    async with AsyncExitStack() as stack:
        one = await redis_limiter(prefix, policy)
        two = await redis_limiter(prefix, policy)
        stack.push_async_callback(one.close)
        stack.push_async_callback(two.close)
        a = await stack.enter_async_context(app_with(settings, services, one))
        b = await stack.enter_async_context(app_with(settings, services, two))
        allowed = 0
        for turn in range(8):  # 11 points each, alternating gateways: 4 fit in 50
            client = a if turn % 2 == 0 else b
            response = await ask(client, analyst.key, PAGE, n=10)  # type: ignore[misc]
            allowed += response.status_code == 200
        assert allowed == 4
        assert one.metrics.rejected + two.metrics.rejected == 4
        assert one.metrics.fallbacks == two.metrics.fallbacks == 0


async def test_redis_down_falls_back_to_a_local_budget_and_never_fails_a_request(
    settings: Settings, services: Services, tenant_id: int
) -> None:
    issued = await services.clients.create(
        tenant_id=tenant_id, name="offline", kind="analyst", scopes=["ledger:read"], rate_limit=30
    )
    # Nobody listens on port 1: every Redis call fails at once.
    limiter = RateLimiter(
        RateLimitSettings(), RedisGcra("redis://127.0.0.1:1/0", prefix="x", timeout_seconds=0.2)
    )
    try:
        async with app_with(settings, services, limiter) as client:
            statuses = [
                (await ask(client, issued.key, PAGE, n=10)).status_code  # type: ignore[misc]
                for _ in range(3)
            ]
            assert statuses == [200, 200, 429]  # the local budget still counts
            assert limiter.metrics.fallbacks == 3
            metrics = (await client.get("/metrics")).text
            assert "gateway_rate_limit_fallbacks_total 3" in metrics
            assert f'gateway_rate_limited_total{{client="{issued.client.id}"}} 1.0' in metrics
    finally:
        await limiter.close()


def test_a_budget_follows_the_principal_it_was_made_for() -> None:
    """Budgets are kept per principal object: a client whose limit changed authenticates as a
    new principal and gets the new limit, on the budget its key already spent (GCRA keeps
    time, not points: the share spent carries over)."""
    limiter = RateLimiter(RateLimitSettings(limits={"partner": 500}))
    old = Principal(subject="client:7", tenant_id=1, scopes=frozenset(), kind="partner",
                    client_id=7, rate_limit=100)  # fmt: skip
    first = limiter.charge_now(old, 60)
    assert (first.limit, first.remaining, first.policy) == (100, 40, '"cost";q=100;w=60')
    assert limiter.charge_now(old, 60).allowed is False
    raised = dataclasses.replace(old, rate_limit=1000)
    after = limiter.charge_now(raised, 60)
    assert (after.allowed, after.limit, after.policy) == (True, 1000, '"cost";q=1000;w=60')
    assert 1000 - 600 - 60 <= after.remaining <= 1000 - 600 - 60 + 1  # 60 % spent, then 60
    kind_default = limiter.charge_now(dataclasses.replace(old, rate_limit=None, client_id=8), 1)
    assert (kind_default.limit, kind_default.remaining) == (500, 499)
    # A JWT subject: by tenant and subject, whatever object carries them.
    jwt = Principal(subject="alice", tenant_id=3, scopes=frozenset())
    limiter.charge_now(jwt, 10)
    # (50,000 points a minute refill 0.83 a millisecond, and 1.2 ms a point is not exact)
    assert abs(limiter.charge_now(dataclasses.replace(jwt), 10).remaining - (50_000 - 20)) <= 1


async def test_leases_spare_round_trips_and_two_processes_never_allow_more_than_the_budget() -> (
    None
):
    """Two limiters on one Redis, each charging from its lease (1 % of the budget): a round
    trip for about every fifteen charges, the two together allowed exactly what the budget
    holds, and each decision's `remaining` off the truth by at most the other's lease."""
    prefix = f"fg-test-rl-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    period = 36_000  # 10,000 points in ten hours: a point refills every 3.6 s
    policy = RateLimitSettings(limits={"analyst": 10_000}, period_seconds=period)
    caller = Principal(subject="client:9", tenant_id=1, scopes=frozenset(), kind="analyst",
                       client_id=9)  # fmt: skip
    one = await redis_limiter(prefix, policy)
    two = await redis_limiter(prefix, policy)
    try:
        started = time.monotonic()
        allowed = refused_in_a_row = 0
        turn = 0
        while refused_in_a_row < 2:
            limiter = one if turn % 2 == 0 else two
            turn += 1
            decision = await limiter.charge(caller, 7)
            if not decision.allowed:
                refused_in_a_row += 1
                continue
            refused_in_a_row = 0
            allowed += 1
            truth = 10_000 - 7 * allowed
            assert truth - 100 - 1 <= decision.remaining <= truth + 100 + 1, (allowed, decision)
        refilled = (time.monotonic() - started) * 10_000 / period + 1
        assert 10_000 // 7 <= allowed <= (10_000 + refilled) // 7
        calls = one.metrics.shared_calls + two.metrics.shared_calls
        assert calls <= allowed // 5, (calls, allowed)
        assert one.metrics.fallbacks == two.metrics.fallbacks == 0
    finally:
        await one.close()
        await two.close()


async def test_an_old_lease_gives_its_unspent_points_back() -> None:
    prefix = f"fg-test-rl-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    policy = RateLimitSettings(
        limits={"analyst": 10_000}, period_seconds=36_000, lease_seconds=0.01
    )
    caller = Principal(subject="client:9", tenant_id=1, scopes=frozenset(), kind="analyst",
                       client_id=9)  # fmt: skip
    limiter = await redis_limiter(prefix, policy)
    store = RedisGcra(REDIS_URL, prefix=prefix, timeout_seconds=5.0)
    try:
        first = await limiter.charge(caller, 7)  # 7, and a lease of 100
        assert (first.allowed, first.remaining) == (True, 10_000 - 7)
        assert (await limiter.charge(caller, 7)).remaining == 10_000 - 14  # from the lease
        await asyncio.sleep(0.02)
        # Expired: its 93 unspent points go back with the renewal, which leases 100 again.
        assert (await limiter.charge(caller, 7)).remaining == 10_000 - 21
        left = await store.take("client:9", cost=1, limit=10_000, period=36_000)
        assert left[:2] == (1, 10_000 - 21 - 100 - 1)
        assert limiter.metrics.shared_calls == 2  # two renewals; the second charge had none
    finally:
        await limiter.close()
        await store.close()


async def test_deployments_with_their_own_key_prefix_keep_their_own_budgets(
    settings: Settings,
) -> None:
    """Budgets live under REDIS_KEY_PREFIX like every other key: two deployments on one
    Redis (their client ids are alike) do not spend each other's budgets."""
    run = f"fg-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    policy = RateLimitSettings(limits={"partner": 10}, lease_percent=0)
    caller = Principal(subject="client:1", tenant_id=1, scopes=frozenset(), kind="partner",
                       client_id=1)  # fmt: skip
    staging, production, again = (
        dataclasses.replace(
            settings, redis_url=REDIS_URL, redis_key_prefix=f"{run}-{name}", rate_limits=policy
        )
        for name in ("staging", "production", "production")
    )
    async with AsyncExitStack() as stack:
        limiters = []
        for chosen in (staging, production, again):
            services = await stack.enter_async_context(open_services(chosen))
            assert services.rate_limiter is not None
            limiters.append(services.rate_limiter)
        assert (await limiters[0].charge(caller, 10)).remaining == 0
        assert (await limiters[1].charge(caller, 4)).remaining == 6  # not staging's
        assert (await limiters[2].charge(caller, 4)).remaining == 2  # production's, shared
        redis = Redis.from_url(REDIS_URL)
        stack.push_async_callback(redis.aclose)
        keys = sorted([key.decode() async for key in redis.scan_iter(match=f"{run}-*")])
        assert keys == [f"{run}-production:rl:client:1", f"{run}-staging:rl:client:1"]


async def test_concurrent_charges_hold_one_lease_between_them() -> None:
    """Twenty charges at once in one process: one of them takes a lease, the others their
    cost (twenty leases would hold 2,000 points of the budget here)."""
    prefix = f"fg-test-rl-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    policy = RateLimitSettings(limits={"analyst": 10_000}, period_seconds=36_000)
    caller = Principal(subject="client:9", tenant_id=1, scopes=frozenset(), kind="analyst",
                       client_id=9)  # fmt: skip
    limiter = await redis_limiter(prefix, policy)
    store = await reachable_gcra(prefix)
    try:
        decisions = await asyncio.gather(*(limiter.charge(caller, 7) for _ in range(20)))
        assert all(decision.allowed for decision in decisions)
        assert limiter.metrics.shared_calls == 20
        left = await store.take("client:9", cost=1, limit=10_000, period=36_000)
        assert left[:2] == (1, 10_000 - 20 * 7 - 100 - 1)
    finally:
        await limiter.close()
        await store.close()


def test_processes_without_redis_each_enforce_their_share_of_a_budget() -> None:
    """RATE_LIMIT_PROCESSES = 4 without Redis: a 100-point budget is 25 points here, so four
    processes counting alone never allow more than 100 together."""
    limiter = RateLimiter(RateLimitSettings(limits={"partner": 500}, processes=4))
    client = Principal(subject="client:7", tenant_id=1, scopes=frozenset(), kind="partner",
                       client_id=7, rate_limit=100)  # fmt: skip
    first = limiter.charge_now(client, 20)
    assert (first.allowed, first.limit, first.remaining) == (True, 25, 5)
    assert first.policy == '"cost";q=25;w=60'
    assert limiter.charge_now(client, 6).allowed is False
    tiny = dataclasses.replace(client, client_id=8, rate_limit=3)  # never below one point
    assert limiter.charge_now(tiny, 1).limit == 1


def test_serve_with_workers_and_no_redis_splits_budgets_between_them(settings: Settings) -> None:
    alone = dataclasses.replace(settings, redis_url=None)
    assert worker_environment(alone, 1) == {}
    assert worker_environment(alone, 3) == {"RATE_LIMIT_PROCESSES": "3"}
    replicas = dataclasses.replace(
        alone, rate_limits=dataclasses.replace(alone.rate_limits, processes=2)
    )
    assert worker_environment(replicas, 3) == {"RATE_LIMIT_PROCESSES": "6"}  # 2 x 3 workers
    shared = dataclasses.replace(settings, redis_url=REDIS_URL)
    assert worker_environment(shared, 3) == {}  # one budget on Redis

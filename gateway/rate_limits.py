"""Rate limits: a cost-weighted budget per API client and per JWT subject, shared on Redis.

Every operation is charged its estimated cost (gateway.cost; at least 1 point, and at most the
caller's whole budget, so a permitted operation can always run once the budget is full) before
it runs; the estimate is known before anything executes, so a refused operation never runs.
A budget of `limit` points refills continuously over `period` seconds (GCRA,
adapters.rate_limiter): a client with 10,000 points a minute may burst 10,000 at once, then
gets about 167 points a second.

Who is counted: an API client by its id (every key it ever had shares one budget); a JWT
subject by tenant and `sub`. The limit: the client's `rate_limit` column, else the default of
its kind (`RATE_LIMIT_<KIND>`).

Where: Redis when REDIS_URL is set (one budget for every process), else in-process (the
embedded default; with RATE_LIMIT_PROCESSES = N, which `gateway serve --workers N` sets, each
process enforces 1/N of every budget, so N processes together never allow more than it).
When Redis fails or times out, each process falls back to its own in-process budget (so N
processes allow up to N times the limit) for `redis_backoff_seconds` before trying Redis
again, and counts it in /metrics (`gateway_rate_limit_fallbacks_total`). A request never
fails because Redis is gone.

Leases: a charge that goes to Redis also takes up to `lease_percent` of the caller's budget
beyond its cost (at most half of what is left), and the caller's next charges in this process
are taken from that lease without a round trip, until it is spent or `lease_seconds` old; its
unspent points go back with the next call to Redis. Leased points are counted as spent in
Redis, so processes together never allow more than the budget; a process may be refused up
to the other processes' unspent leases early. A round trip per charge made protection double
a one-row query's time (bench/README.md, "leases"). `lease_percent` 0: every charge goes to
Redis.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError

from adapters.rate_limiter import GcraGrant, GcraResult, GcraStore, MemoryGcra, RedisGcra
from gateway.env_values import integer, non_negative_float, on_unless_off, positive_float
from resolvers.errors import GatewayError
from resolvers.principal import Principal
from resolvers.rate_limit import RateLimitStatus

__all__ = [
    "DEFAULT_RATE_LIMITS",
    "RateLimitDecision",
    "RateLimitSettings",
    "RateLimited",
    "RateLimiter",
    "load_rate_limit_settings",
    "open_rate_limiter",
]

logger = logging.getLogger("gateway.rate_limits")

# Points per period (60 s) per client kind.
DEFAULT_RATE_LIMITS: dict[str, int] = {
    "partner": 20_000,
    "first_party": 50_000,
    "analyst": 200_000,
}
_POLICY_NAME = "cost"


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """RATE_LIMITS (on/off), RATE_LIMIT_<KIND> (points per period), RATE_LIMIT_PERIOD_SECONDS,
    RATE_LIMIT_REDIS_TIMEOUT_MS, RATE_LIMIT_REDIS_BACKOFF_SECONDS, RATE_LIMIT_LEASE_PERCENT,
    RATE_LIMIT_LEASE_MS, RATE_LIMIT_PROCESSES."""

    enabled: bool = True
    limits: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    period_seconds: int = 60
    redis_timeout_seconds: float = 0.5
    redis_backoff_seconds: float = 5.0
    lease_percent: float = 1.0  # of a budget, taken ahead on Redis (0: a round trip a charge)
    lease_seconds: float = 1.0
    # Without Redis: the processes serving the same callers, each enforcing 1/N of a budget.
    processes: int = 1


def load_rate_limit_settings(env: Mapping[str, str] | None = None) -> RateLimitSettings:
    env = os.environ if env is None else env
    limits = {
        kind: integer(env, f"RATE_LIMIT_{kind.upper()}", default, minimum=1)
        for kind, default in DEFAULT_RATE_LIMITS.items()
    }
    return RateLimitSettings(
        enabled=on_unless_off(env, "RATE_LIMITS"),
        limits=limits,
        period_seconds=integer(env, "RATE_LIMIT_PERIOD_SECONDS", 60, minimum=1),
        redis_timeout_seconds=positive_float(env, "RATE_LIMIT_REDIS_TIMEOUT_MS", 500) / 1000,
        redis_backoff_seconds=positive_float(env, "RATE_LIMIT_REDIS_BACKOFF_SECONDS", 5),
        lease_percent=non_negative_float(env, "RATE_LIMIT_LEASE_PERCENT", 1, maximum=50),
        lease_seconds=positive_float(env, "RATE_LIMIT_LEASE_MS", 1000) / 1000,
        processes=integer(env, "RATE_LIMIT_PROCESSES", 1, minimum=1),
    )


class RateLimited(GatewayError):
    """Over the budget: HTTP 429 with Retry-After; nothing ran."""

    code = "RATE_LIMITED"
    status_code = 429

    def __init__(self, message: str, headers: dict[str, str], **extensions: object) -> None:
        super().__init__(message, **extensions)
        self.headers = headers


class RateLimitDecision(NamedTuple):
    """The outcome of charging one operation, with the IETF RateLimit headers' values."""

    allowed: bool
    limit: int
    cost: int
    remaining: int
    reset_seconds: float
    retry_after_seconds: float
    decided_at: float  # time.time() of the charge
    policy: str  # the `RateLimit-Policy` value
    window: str  # the `RateLimit` value

    @property
    def status(self) -> RateLimitStatus:
        """The `rateLimit` root field's answer."""
        return RateLimitStatus(
            limit=self.limit,
            cost=self.cost,
            remaining=self.remaining,
            reset_at=dt.datetime.fromtimestamp(self.decided_at + self.reset_seconds, dt.UTC),
        )

    @property
    def headers(self) -> dict[str, str]:
        """`RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers), and
        `Retry-After` when refused."""
        headers = {"ratelimit-policy": self.policy, "ratelimit": self.window}
        if not self.allowed:
            headers["retry-after"] = str(max(1, math.ceil(self.retry_after_seconds)))
        return headers


# A decision without a Python-level __new__ call: one is made per request.
_new_decision = tuple.__new__


def _key(principal: Principal) -> str:
    """The budget's key: an API client's id, else the tenant and the JWT's subject (longer
    subjects by their SHA-256)."""
    if principal.client_id is not None:
        return f"client:{principal.client_id}"
    subject = principal.subject
    if len(subject) > 64:
        subject = hashlib.sha256(subject.encode()).hexdigest()
    return f"sub:{principal.tenant_id}:{subject}"


def _charged(cost: int, limit: int) -> int:
    """What an operation of `cost` is charged: at least 1 point, at most the whole budget."""
    return 1 if cost < 1 else limit if cost > limit else cost


class _Budget(NamedTuple):
    """A caller's budget as `RateLimiter._budget` found it for one principal object."""

    principal: Principal
    key: str
    limit: int
    policy: str  # the `RateLimit-Policy` value
    lease: int  # the most a charge on Redis takes ahead (points)


class _Lease:
    """Points of a caller's shared budget this process took ahead from Redis: `credit` left
    to spend, at `interval` ms a point of `limit`, until `expires` (monotonic ms). `tat` is
    when Redis's budget, the whole lease counted as spent, would be whole again (monotonic
    ms of this process)."""

    __slots__ = ("credit", "expires", "interval", "limit", "tat")

    def __init__(self, credit: int, tat: float, expires: float, interval: float, limit: int):
        self.credit = credit
        self.tat = tat
        self.expires = expires
        self.interval = interval
        self.limit = limit


# Principals whose budgets are kept: a few per API client and JWT subject in use.
_MAX_BUDGETS = 4096


@dataclass(slots=True)
class RateLimitMetrics:
    rejected: int = 0
    fallbacks: int = 0
    shared_calls: int = 0  # charges (and lease renewals) sent to Redis


class RateLimiter:
    """Charges operations against the caller's budget: Redis first, this process's twin when
    Redis is unavailable.

    `charge` is the one entry point; `charge_now` is the same charge without a coroutine, for
    a limiter without Redis (`in_process`).
    """

    def __init__(self, settings: RateLimitSettings, shared: GcraStore | None = None) -> None:
        self.settings = settings
        self._shared = shared
        self.in_process = shared is None
        self._local = MemoryGcra()
        self._period = float(settings.period_seconds)
        self._period_ms = self._period * 1000
        self._kind_limits = dict(settings.limits)
        self._default_limit = DEFAULT_RATE_LIMITS["first_party"]
        # Each caller's budget by the principal object's id (`_budget`): authentication hands
        # out the same object for a credential while it remembers it (bounded).
        self._budgets: dict[int, _Budget] = {}
        # On Redis: each budget's lease in this process, by key (`leased`, `charge`).
        self._leases: dict[str, _Lease] = {}
        self._renewing: set[str] = set()  # keys with a lease renewal on its way to Redis
        self._lease_ms = settings.lease_seconds * 1000
        self._shared_down_until = 0.0
        self.metrics = RateLimitMetrics()

    async def _take(
        self, shared: GcraStore, key: str, cost: int, extra: int, refund_ms: float, limit: int
    ) -> GcraGrant:
        """Redis's grant, else (Redis failed, or failed less than the backoff ago) the
        in-process twin's charge, without a lease."""
        period = self._period
        if time.monotonic() >= self._shared_down_until:
            self.metrics.shared_calls += 1
            try:
                return await shared.take(
                    key, cost=cost, extra=extra, refund_ms=refund_ms, limit=limit, period=period
                )
            except (RedisError, OSError, TimeoutError) as error:
                self._shared_down_until = time.monotonic() + self.settings.redis_backoff_seconds
                logger.warning(
                    "rate limits: Redis failed (%s); this process counts alone for %.0fs",
                    type(error).__name__,
                    self.settings.redis_backoff_seconds,
                )
        self.metrics.fallbacks += 1
        allowed, remaining, reset_seconds, retry_after_seconds = self._local.charge_now(
            key, cost, limit, period
        )
        return (cost if allowed else 0, remaining, reset_seconds, retry_after_seconds)

    async def charge(self, principal: Principal, cost: int) -> RateLimitDecision:
        """Charge `cost` points (at least 1, at most the whole budget); never raises. On
        Redis: from this process's lease of the caller's budget when it covers the charge,
        else one round trip that also renews the lease."""
        shared = self._shared
        if shared is None:
            return self.charge_now(principal, cost)
        decision = self.leased(principal, cost)
        if decision is not None:
            return decision
        budget = self._budget(principal)
        charged = _charged(cost, budget.limit)
        key = budget.key
        spent = self._leases.pop(key, None)  # (popped: a concurrent renewal cannot refund it)
        refund_ms = 0.0 if spent is None else spent.credit * spent.interval
        # One renewal at a time takes a lease: charges meanwhile take their cost only, or a
        # burst of N concurrent charges would hold N leases here.
        renewing = key in self._renewing
        if not renewing:
            self._renewing.add(key)
        try:
            granted, remaining, reset_seconds, retry_after_seconds = await self._take(
                shared, key, charged, 0 if renewing else budget.lease, refund_ms, budget.limit
            )
        finally:
            if not renewing:
                self._renewing.discard(key)
        if granted <= charged:  # no lease: as Redis (or the local twin) counted it
            counted = (granted > 0, remaining, reset_seconds, retry_after_seconds)
            return self._decision(counted, budget, charged)
        now = time.monotonic() * 1000
        lease = self._leases.get(key)
        tat = now + reset_seconds * 1000
        if lease is None or lease.limit != budget.limit:
            interval = self._period_ms / budget.limit
            lease = _Lease(granted - charged, tat, now + self._lease_ms, interval, budget.limit)
            if len(self._leases) >= _MAX_BUDGETS:
                self._leases = {k: v for k, v in self._leases.items() if v.expires > now}
            self._leases[key] = lease
        else:  # another charge renewed it meanwhile: both leases are this process's
            lease.credit += granted - charged
            if tat > lease.tat:
                lease.tat = tat
        return self._from_lease(lease, budget, charged, now)

    def leased(self, principal: Principal, cost: int) -> RateLimitDecision | None:
        """The charge taken from this process's lease of the caller's budget on Redis, or
        None when there is no lease that covers it (then `charge`, which renews it)."""
        budget = self._budget(principal)
        lease = self._leases.get(budget.key)
        if lease is None:
            return None
        charged = _charged(cost, budget.limit)
        now = time.monotonic() * 1000
        if lease.credit < charged or now >= lease.expires or lease.limit != budget.limit:
            return None
        lease.credit -= charged
        return self._from_lease(lease, budget, charged, now)

    def _from_lease(
        self, lease: _Lease, budget: _Budget, charged: int, now: float
    ) -> RateLimitDecision:
        """An allowed charge's figures with the lease's unspent points not counted as spent
        (other processes' charges since its renewal are not known here)."""
        wait = lease.tat - lease.credit * lease.interval - now  # ms until the budget is whole
        if wait < 0:
            wait = 0.0
        remaining = math.floor((self._period_ms - wait) / lease.interval)
        counted = (True, remaining if remaining > 0 else 0, wait / 1000, 0.0)
        return self._decision(counted, budget, charged)

    def charge_now(self, principal: Principal, cost: int) -> RateLimitDecision:
        """`charge` without a coroutine, on this process's budget: for an `in_process`
        limiter, and only for one (the GraphQL endpoint calls it on every request)."""
        budget = self._budget(principal)
        charged = _charged(cost, budget.limit)
        counted = self._local.charge_now(budget.key, charged, budget.limit, self._period)
        return self._decision(counted, budget, charged)

    def _budget(self, principal: Principal) -> _Budget:
        """The caller's budget: its key, its limit (its own, else its kind's; without Redis,
        this process's share of it) and that limit's `RateLimit-Policy` (kept: made once per
        principal object)."""
        budget = self._budgets.get(id(principal))
        if budget is not None and budget.principal is principal:
            return budget
        limit = principal.rate_limit
        if limit is None:
            limit = self._kind_limits.get(principal.kind, self._default_limit)
        if self._shared is None and self.settings.processes > 1:  # this process's share
            limit = max(1, limit // self.settings.processes)
        policy = f'"{_POLICY_NAME}";q={limit};w={self.settings.period_seconds}'
        lease = math.floor(limit * self.settings.lease_percent / 100)
        budget = _Budget(principal, _key(principal), limit, policy, lease)
        if len(self._budgets) >= _MAX_BUDGETS:
            self._budgets.clear()
        self._budgets[id(principal)] = budget  # (`budget.principal` keeps the id its own)
        return budget

    def _decision(self, counted: GcraResult, budget: _Budget, charged: int) -> RateLimitDecision:
        allowed, remaining, reset_seconds, retry_after_seconds = counted
        if not allowed:
            self.metrics.rejected += 1
        reset = math.ceil(reset_seconds)
        return _new_decision(
            RateLimitDecision,
            (
                allowed,
                budget.limit,
                charged,
                remaining,
                reset_seconds,
                retry_after_seconds,
                time.time(),
                budget.policy,
                f'"{_POLICY_NAME}";r={remaining};t={reset if reset > 0 else 0}',
            ),
        )

    def collector(self) -> Collector:
        """Prometheus collector: charges counted locally while Redis did not answer."""
        return _RateLimitCollector(self.metrics)

    async def close(self) -> None:
        if self._shared is not None:
            await self._shared.close()


class _RateLimitCollector(Collector):
    def __init__(self, metrics: RateLimitMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        # Refusals are counted per client by gateway.metrics (Metrics.rate_limited).
        yield CounterMetricFamily(
            "gateway_rate_limit_fallbacks",
            "Charges counted by the process alone because Redis did not answer.",
            value=self._metrics.fallbacks,
        )
        yield CounterMetricFamily(
            "gateway_rate_limit_redis_calls",
            "Charges sent to Redis; the others were taken from the process's leases.",
            value=self._metrics.shared_calls,
        )


def open_rate_limiter(
    settings: RateLimitSettings, redis_url: str | None, *, prefix: str
) -> RateLimiter:
    """On Redis under `prefix` when `redis_url` is set (shared by every process with that
    prefix: REDIS_KEY_PREFIX keeps deployments on one Redis apart), else in-process."""
    shared = (
        RedisGcra(redis_url, prefix=prefix, timeout_seconds=settings.redis_timeout_seconds)
        if redis_url
        else None
    )
    return RateLimiter(settings, shared)

"""Rate limits of login and sign-up attempts: GCRA buckets kept in memory or in Redis.

quart-rate-limiter did this before and could not do it right: its hooks run on every request
(about 3% of a trivial one); its keys include the endpoint, so the API and the page logins
counted apart; it reads a bucket and writes it back in two awaited steps, so concurrent
attempts all pass (worse over Redis); and its stores never forget a key, so attempts with
random e-mails would grow them without bound. Here only the login and sign-up handlers call
`AuthThrottle.attempt`; every bucket is taken atomically (one Lua script in Redis, no await
in memory); and every key expires once its bucket is full again.

The memory store counts per process: with several workers each keeps its own buckets, and an
attacker spread over them gets up to N times the limit. With `PIXWEB_BROKER_URL=redis://...`
(which several workers need anyway) the buckets live in Redis, shared by every process; when
Redis fails the process falls back to its own memory buckets instead of refusing all logins.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from pixweb.errors import RateLimitedError

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 1.0  # seconds: a stalled Redis must not hold a login for long


@dataclass(frozen=True)
class Limit:
    """`count` attempts at once, then one more every `period / count` seconds."""

    count: int
    period: float

    @property
    def interval(self) -> float:
        return self.period / self.count


Bucket = tuple[str, Limit]


class Store(Protocol):
    async def take(self, buckets: Sequence[Bucket]) -> float:
        """Take one attempt from every bucket, or from none: 0 when taken, else the seconds
        until all of them allow it."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """Buckets of this process: a theoretical arrival time (TAT) per key, dropped once past."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tats: dict[str, float] = {}
        self._clock = clock
        self._next_sweep = 0.0

    async def take(self, buckets: Sequence[Bucket]) -> float:
        now = self._clock()
        tats = [max(self._tats.get(key, now), now) for key, _ in buckets]
        wait = max(
            tat - now - (limit.period - limit.interval)
            for tat, (_, limit) in zip(tats, buckets, strict=True)
        )
        if wait > 0:
            return wait
        for tat, (key, limit) in zip(tats, buckets, strict=True):
            self._tats[key] = tat + limit.interval
        self._sweep(now)
        return 0.0

    def __len__(self) -> int:
        """How many keys are held (full buckets are forgotten)."""
        return len(self._tats)

    def _sweep(self, now: float) -> None:
        # A key whose TAT is past is a full bucket, the same as no key: forget it.
        if now >= self._next_sweep:
            self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
            self._next_sweep = now + 60

    async def close(self) -> None:
        self._tats.clear()


# Every bucket or none, in one step on the server (its clock for every process).
_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tats, wait = {}, 0
for i, key in ipairs(KEYS) do
  local period, interval = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  tats[i] = math.max(tonumber(redis.call('GET', key) or '0'), now)
  wait = math.max(wait, tats[i] - now - (period - interval))
end
if wait > 0 then return tostring(wait) end
for i, key in ipairs(KEYS) do
  local tat = tats[i] + tonumber(ARGV[2 * i])
  redis.call('SET', key, string.format('%.6f', tat), 'PX', math.ceil((tat - now) * 1000))
end
return '0'
"""


class RedisStore:
    """Buckets in Redis, shared by every process; this process's memory while Redis fails."""

    def __init__(self, url: str, prefix: str) -> None:
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
        )
        self._script: AsyncScript = self._redis.register_script(_TAKE)
        self._prefix = prefix
        self._fallback = MemoryStore()
        self._failing = False

    async def take(self, buckets: Sequence[Bucket]) -> float:
        from redis.exceptions import RedisError

        keys = [self._prefix + key for key, _ in buckets]
        args: list[Any] = [x for _, limit in buckets for x in (limit.period, limit.interval)]
        try:
            wait = float(await self._script(keys=keys, args=args))
        except (RedisError, OSError, TimeoutError) as error:
            if not self._failing:
                log.warning("rate limits fall back to this process's memory: %r", error)
            self._failing = True
            return await self._fallback.take(buckets)
        if self._failing:
            log.warning("rate limits are back in Redis")
            self._failing = False
        return wait

    async def close(self) -> None:
        await self._redis.aclose()


def make_store(broker_url: str) -> Store:
    """Redis buckets when the broker is Redis (several processes), else this process's."""
    if urlsplit(broker_url).scheme not in ("redis", "rediss", "unix"):
        return MemoryStore()
    from pixweb.broker import redis_channel_prefix

    parts = urlsplit(broker_url)
    query = "&".join(p for p in parts.query.split("&") if p and not p.startswith("prefix="))
    url = parts._replace(query=query).geturl()
    return RedisStore(url, prefix=redis_channel_prefix(broker_url) + "ratelimit:")


def address_key(address: str) -> str:
    """The bucket of a client address: an IPv6 client owns a whole /64, so count it whole."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def account_key(email: str) -> str:
    """The bucket of an account: a digest of the normalised e-mail (no address kept)."""
    normal = email.strip().lower().encode()
    return hashlib.blake2b(normal, digest_size=16).hexdigest()


class AuthThrottle:
    """Login and sign-up attempts: `per_minute` per client address (every route together),
    and as many per ten minutes per account tried, whatever address they come from."""

    def __init__(self, store: Store, per_minute: int) -> None:
        self.store = store
        self.enabled = per_minute > 0
        self._address = Limit(max(per_minute, 1), 60.0)
        self._account = Limit(max(per_minute, 1), 600.0)

    async def attempt(self, address: str, email: str | None = None) -> None:
        """Count one attempt, or raise RateLimitedError when the address or account is out."""
        if not self.enabled:
            return
        buckets = [(f"address:{address_key(address)}", self._address)]
        if email is not None:
            buckets.append((f"account:{account_key(email)}", self._account))
        wait = await self.store.take(buckets)
        if wait > 0:
            seconds = max(1, math.ceil(wait))
            raise RateLimitedError(
                f"too many login or sign-up attempts; try again in {seconds} s",
                retry_after=seconds,
            )

    async def close(self) -> None:
        await self.store.close()

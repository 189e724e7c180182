"""What one webhook attempt changes: the attempt's log row, the delivery's state and next
due time, the endpoint's failure streak, and disabling an endpoint that is gone (410) or has
failed for DISABLE_AFTER. The attempts of many deliveries are recorded in one transaction
(the worker's group commit, services/delivery_writer.py): one fsync or round trip set per
batch instead of four statements per delivery; the page learns of them after commit.

Retries follow SCHEDULE (the delay before each attempt: 8 attempts over about 28 hours),
each delay ±JITTER so that endpoints failing together do not come back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from tortoise.transactions import in_transaction

from pixweb.broker import Broker
from pixweb.models import (
    DeliveryStatus,
    Notification,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from pixweb.services import ledger
from pixweb.services.clock import utcnow
from pixweb.services.events import Outbox, account_channel
from pixweb.services.webhook_sender import Answer

SCHEDULE = tuple(
    timedelta(seconds=s) for s in (0, 5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
)
MAX_ATTEMPTS = len(SCHEDULE)
JITTER = 0.10
DISABLE_AFTER = timedelta(days=3)  # of failures in a row
NOTICE = "webhook_desativado"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # failed, due again later
    FAILED = "failed"  # the schedule ran out, or the endpoint was disabled or deleted


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    disabled: bool = False
    status_code: int | None = None
    attempted: bool = True  # False: given up without a POST (endpoint deleted or disabled)


def retry_delay(attempts: int) -> timedelta:
    """How long after its `attempts`-th failed attempt a delivery is due again."""
    return SCHEDULE[attempts] * random.uniform(1 - JITTER, 1 + JITTER)


@dataclass(frozen=True)
class Attempt:
    """One POST made for a claimed delivery, to be recorded."""

    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    answer: Answer
    started_at: datetime


async def record_attempt(
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    answer: Answer,
    *,
    started_at: datetime,
    broker: Broker,
) -> Result:
    """Log the attempt and move the delivery on; publish `webhook.attempt` after commit."""
    [result] = await record_attempts(
        [Attempt(delivery, endpoint, answer, started_at)], broker=broker
    )
    return result


async def record_attempts(attempts: list[Attempt], *, broker: Broker) -> list[Result]:
    """Log many attempts (of distinct deliveries) in one transaction: one INSERT of their
    log rows, each endpoint's streak moved once, one UPDATE of the deliveries; publish a
    `webhook.attempt` per delivery after commit."""
    outbox = Outbox()
    now = utcnow()
    async with in_transaction():
        await WebhookAttempt.bulk_create(
            [
                WebhookAttempt(
                    delivery_id=a.delivery.id,
                    number=a.delivery.attempts + 1,
                    started_at=a.started_at,
                    duration_ms=a.answer.duration_ms,
                    status_code=a.answer.status_code,
                    response_body=a.answer.body,
                    error=a.answer.error,
                )
                for a in attempts
            ]
        )
        disabled: dict[int, bool] = {}
        for group in _by_endpoint(attempts):
            disabled[group[0].endpoint.id] = await _endpoint_state(group, now, outbox)
        results = [_move_on(a, disabled[a.endpoint.id], now) for a in attempts]
        await WebhookDelivery.bulk_update(
            [a.delivery for a in attempts],
            fields=[
                "attempts",
                "status",
                "next_attempt_at",
                "last_attempt_at",
                "last_status_code",
                "completed_at",
            ],
        )
    for a in attempts:
        outbox.add(account_channel(a.endpoint.merchant_id), _attempt_event(a))
    await outbox.publish(broker)
    return results


def _by_endpoint(attempts: list[Attempt]) -> list[list[Attempt]]:
    groups: dict[int, list[Attempt]] = {}
    for a in attempts:
        groups.setdefault(a.endpoint.id, []).append(a)
    return list(groups.values())


async def _endpoint_state(group: list[Attempt], now: datetime, outbox: Outbox) -> bool:
    """Move one endpoint's streak for its attempts in a batch: a success ends it, a failure
    starts it (or disables an endpoint failing for too long), a 410 disables it. Whether
    this batch disabled it."""
    endpoint = group[0].endpoint
    mine = [a.delivery.id for a in group]
    if any(a.answer.status_code == 410 for a in group):
        return await _disable(endpoint, "o endereço respondeu 410 Gone", mine, now, outbox)
    if any(a.answer.ok for a in group) and endpoint.failing_since is not None:
        await WebhookEndpoint.filter(id=endpoint.id).update(failing_since=None)
        endpoint.failing_since = None
    if all(a.answer.ok for a in group):
        return False
    return await _streak(endpoint, mine, now, outbox)


def _move_on(a: Attempt, disabled: bool, now: datetime) -> Result:
    """Set the delivery's fields after its attempt (written by the caller)."""
    number = a.delivery.attempts + 1
    if a.answer.ok:
        outcome = Outcome.SUCCEEDED
    elif a.answer.status_code == 410 or disabled:
        outcome = Outcome.FAILED
    else:
        outcome = Outcome.RETRYING if number < MAX_ATTEMPTS else Outcome.FAILED
    delivery = a.delivery
    delivery.attempts = number
    delivery.status = _status(outcome)
    delivery.next_attempt_at = now + retry_delay(number) if outcome == Outcome.RETRYING else None
    delivery.last_attempt_at = a.started_at
    delivery.last_status_code = a.answer.status_code
    delivery.completed_at = None if outcome == Outcome.RETRYING else now
    return Result(outcome, disabled and not a.answer.ok, a.answer.status_code)


def _attempt_event(a: Attempt) -> dict[str, Any]:
    return {
        "type": "webhook.attempt",
        "merchant_id": a.endpoint.merchant_id,
        "endpoint_id": a.endpoint.id,
        "delivery_id": a.delivery.id,
        "event_id": a.delivery.event_id,
        "status": str(a.delivery.status),
        "attempt": a.delivery.attempts,
        "status_code": a.answer.status_code,
    }


def _status(outcome: Outcome) -> DeliveryStatus:
    if outcome == Outcome.SUCCEEDED:
        return DeliveryStatus.SUCCEEDED
    return DeliveryStatus.PENDING if outcome == Outcome.RETRYING else DeliveryStatus.FAILED


async def _streak(
    endpoint: WebhookEndpoint, mine: list[int], now: datetime, outbox: Outbox
) -> bool:
    """Start the endpoint's failure streak, or disable it when the streak is old enough."""
    started = await WebhookEndpoint.filter(id=endpoint.id, failing_since__isnull=True).update(
        failing_since=now
    )
    if started:
        return False
    old = await WebhookEndpoint.filter(
        id=endpoint.id, enabled=True, failing_since__lte=now - DISABLE_AFTER
    ).exists()
    if not old:
        return False
    reason = f"falhou por {DISABLE_AFTER.days} dias seguidos"
    return await _disable(endpoint, reason, mine, now, outbox)


async def _disable(
    endpoint: WebhookEndpoint,
    reason: str,
    mine: list[int],
    now: datetime,
    outbox: Outbox,
) -> bool:
    """Disable the endpoint (once, whoever gets here first), fail what it still owes besides
    `mine` (the deliveries being recorded), and tell the merchant."""
    changed = await WebhookEndpoint.filter(id=endpoint.id, enabled=True).update(
        enabled=False, disabled_reason=reason[:200], updated_at=now
    )
    if not changed:
        return False
    await (
        WebhookDelivery.filter(endpoint_id=endpoint.id, status=DeliveryStatus.PENDING)
        .exclude(id__in=mine)
        .update(status=DeliveryStatus.FAILED, next_attempt_at=None, completed_at=now)
    )
    notification = await Notification.create(
        merchant_id=endpoint.merchant_id,
        tipo=NOTICE,
        mensagem=f"Webhook desativado: {endpoint.url} {reason}."[:200],
        dados={"endpoint": endpoint.id, "url": endpoint.url, "motivo": reason},
        created_at=now,
    )
    outbox.add(
        account_channel(endpoint.merchant_id),
        {
            "type": "notification",
            "merchant_id": endpoint.merchant_id,
            "notification": ledger.notification_dict(notification),
        },
    )
    return True

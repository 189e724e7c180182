"""What one webhook attempt changes: the attempt's log row, the delivery's state and next
due time, the endpoint's failure streak, and disabling an endpoint that is gone (410) or has
failed for DISABLE_AFTER. All in one transaction; the page learns of it after commit.

Retries follow SCHEDULE (the delay before each attempt: 8 attempts over about 28 hours),
each delay ±JITTER so that endpoints failing together do not come back together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

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


async def record_attempt(
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    answer: Answer,
    *,
    started_at: datetime,
    broker: Broker,
) -> Result:
    """Log the attempt and move the delivery on; publish `webhook.attempt` after commit."""
    outbox = Outbox()
    now = utcnow()
    number = delivery.attempts + 1
    disabled = False
    async with in_transaction():
        await WebhookAttempt.create(
            delivery_id=delivery.id,
            number=number,
            started_at=started_at,
            duration_ms=answer.duration_ms,
            status_code=answer.status_code,
            response_body=answer.body,
            error=answer.error,
        )
        if answer.ok:
            outcome = Outcome.SUCCEEDED
            if endpoint.failing_since is not None:  # as read before the attempt
                await WebhookEndpoint.filter(id=endpoint.id).update(failing_since=None)
        elif answer.status_code == 410:
            outcome = Outcome.FAILED
            reason = "o endereço respondeu 410 Gone"
            disabled = await _disable(endpoint, reason, delivery, now, outbox)
        else:
            outcome = Outcome.RETRYING if number < MAX_ATTEMPTS else Outcome.FAILED
            disabled = await _streak(endpoint, delivery, now, outbox)
            if disabled:
                outcome = Outcome.FAILED
        await WebhookDelivery.filter(id=delivery.id).update(
            attempts=number,
            status=_status(outcome),
            next_attempt_at=now + retry_delay(number) if outcome == Outcome.RETRYING else None,
            last_attempt_at=started_at,
            last_status_code=answer.status_code,
            completed_at=None if outcome == Outcome.RETRYING else now,
        )
    outbox.add(
        account_channel(endpoint.merchant_id),
        {
            "type": "webhook.attempt",
            "merchant_id": endpoint.merchant_id,
            "endpoint_id": endpoint.id,
            "delivery_id": delivery.id,
            "event_id": delivery.event_id,
            "status": str(_status(outcome)),
            "attempt": number,
            "status_code": answer.status_code,
        },
    )
    await outbox.publish(broker)
    return Result(outcome, disabled, answer.status_code)


def _status(outcome: Outcome) -> DeliveryStatus:
    if outcome == Outcome.SUCCEEDED:
        return DeliveryStatus.SUCCEEDED
    return DeliveryStatus.PENDING if outcome == Outcome.RETRYING else DeliveryStatus.FAILED


async def _streak(
    endpoint: WebhookEndpoint, delivery: WebhookDelivery, now: datetime, outbox: Outbox
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
    return await _disable(endpoint, reason, delivery, now, outbox)


async def _disable(
    endpoint: WebhookEndpoint,
    reason: str,
    delivery: WebhookDelivery,
    now: datetime,
    outbox: Outbox,
) -> bool:
    """Disable the endpoint (once, whoever gets here first), fail what it still owes, and
    tell the merchant."""
    changed = await WebhookEndpoint.filter(id=endpoint.id, enabled=True).update(
        enabled=False, disabled_reason=reason[:200], updated_at=now
    )
    if not changed:
        return False
    await (
        WebhookDelivery.filter(endpoint_id=endpoint.id, status=DeliveryStatus.PENDING)
        .exclude(id=delivery.id)
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

"""Merchant webhook endpoints: where a merchant's events go, and with which secret.

The secrets themselves (format, encryption, which ones sign now) live in webhook_secrets;
`signing_secrets` is re-exported here for the delivery worker.
"""

from __future__ import annotations

from pixweb.services.webhook_secrets import new_secret, signing_secrets

__all__ = ["new_secret", "signing_secrets"]

"""Merchants: registration, password login and the bearer tokens that follow."""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from pixweb import validation
from pixweb.errors import AuthenticationError, ConflictError, InvalidInputError
from pixweb.models import Account, Merchant
from pixweb.pix import brcode, keys
from pixweb.services.clock import utcnow

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both failures cost the same time.
_DUMMY_HASH = _hasher.hash("pixweb-timing-equalizer")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_JWT_ALGORITHM = "HS256"
BAD_CREDENTIALS = "invalid e-mail or password"
PASSWORD_MIN, PASSWORD_MAX = 8, 256
MERCHANT_ID_MAX = validation.INT_MAX  # Merchant.id is an IntField


def normalize_email(email: str, *, field: str = "email") -> str:
    """Lower-case and check an e-mail address, or raise InvalidInputError naming `field`."""
    email = validation.check_text(field, email.strip()).lower()
    if len(email) > 254 or not _EMAIL.fullmatch(email):
        raise InvalidInputError("invalid e-mail address", fields={field: "invalid e-mail address"})
    return email


def _check_text(field: str, value: str, limit: int) -> str:
    value = validation.check_text(field, value.strip())
    # The BR Code keeps only printable ASCII: a name with nothing left would make no code.
    if not value or len(value) > limit or not brcode.ascii_text(value, limit):
        message = f"must have 1 to {limit} characters, some of them letters or digits"
        raise InvalidInputError(f"{field} {message}", fields={field: message})
    return value


async def register_merchant(
    *, name: str, email: str, password: str, city: str, pix_key: str
) -> Merchant:
    """Create a merchant with a hashed password; a taken e-mail is a ConflictError."""
    name = _check_text("name", name, 100)
    city = _check_text("city", city, 60)
    email = normalize_email(email)
    validation.check_text("password", password)
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        message = f"must have {PASSWORD_MIN} to {PASSWORD_MAX} characters"
        raise InvalidInputError(f"password {message}", fields={"password": message})
    validation.check_text("pix_key", pix_key.strip())
    try:
        key_type, key = keys.normalize(pix_key)
    except InvalidInputError as exc:
        raise InvalidInputError(exc.detail, fields={"pix_key": exc.detail}) from exc
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    try:
        async with in_transaction():
            merchant = await Merchant.create(
                name=name,
                email=email,
                password_hash=password_hash,
                city=city,
                pix_key=key,
                pix_key_type=key_type.value,
            )
            await Account.create(merchant=merchant)
            return merchant
    except IntegrityError as exc:
        raise ConflictError("a merchant with this e-mail already exists") from exc


async def authenticate(email: str, password: str) -> Merchant:
    """Return the merchant owning these credentials; one message for every failure."""
    if validation.has_forbidden(email) or validation.has_forbidden(password):
        # No account can have them, and they must not reach the query (nor the hasher: an
        # unpaired surrogate cannot even be encoded).
        raise AuthenticationError(BAD_CREDENTIALS)
    merchant = await Merchant.get_or_none(email=email.strip().lower())
    stored = merchant.password_hash if merchant else _DUMMY_HASH
    try:
        await asyncio.to_thread(_hasher.verify, stored, password)
    except (VerificationError, InvalidHashError):
        merchant = None
    if merchant is None:
        raise AuthenticationError(BAD_CREDENTIALS)
    return merchant


def issue_token(merchant: Merchant, *, secret: str, ttl_seconds: int) -> str:
    """Sign an HS256 access token whose subject is the merchant id."""
    now = utcnow()
    claims = {"sub": str(merchant.id), "iat": now, "exp": now + timedelta(seconds=ttl_seconds)}
    return jwt.encode(claims, secret, algorithm=_JWT_ALGORITHM)


def _verified_claims(token: str, secret: str) -> tuple[int, float]:
    """The merchant id and expiry (epoch seconds) of a valid token, or AuthenticationError.

    The subject must be an id the database can hold: a signed token naming 2**70 is refused
    here, not left to overflow the query.
    """
    if not token.isascii():  # a JWT is base64url; PyJWT would fail to encode a surrogate
        raise AuthenticationError("invalid or expired token")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_JWT_ALGORITHM], options={"require": ["exp", "sub"]}
        )
    except jwt.InvalidTokenError as exc:
        raise AuthenticationError("invalid or expired token") from exc
    merchant_id = validation.parse_id(claims["sub"], MERCHANT_ID_MAX)
    if merchant_id is None:
        raise AuthenticationError("invalid or expired token")
    # PyJWT checked `exp` is a number in the future; kept as it is (float(10**400) overflows).
    expires: float = claims["exp"]
    return merchant_id, expires


async def _merchant(merchant_id: int) -> Merchant:
    merchant = await Merchant.get_or_none(id=merchant_id)
    if merchant is None:
        raise AuthenticationError("invalid or expired token")
    return merchant


async def merchant_from_token(token: str, *, secret: str) -> Merchant:
    """Verify a bearer token (algorithm pinned, expiry required) and load its merchant."""
    merchant_id, _ = _verified_claims(token, secret)
    return await _merchant(merchant_id)


class TokenCache:
    """The merchants of recently verified bearer tokens, each kept for `seconds`.

    Verifying the signature and reading the merchant's row on every request was a quarter
    of a charge's server CPU (make bench). Nothing a request reads of its merchant (id,
    name, city, Pix key) ever changes, and an entry never outlives its token; the one
    thing a cached entry delays is noticing a merchant deleted by hand in the database,
    by `seconds` at most. One cache per app: one secret, one database.
    """

    def __init__(
        self,
        secret: str,
        *,
        seconds: float = 2.0,
        size: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._seconds = seconds
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Merchant]] = OrderedDict()

    async def merchant(self, token: str) -> Merchant:
        """The token's merchant, as `merchant_from_token` finds it."""
        now = self._clock()
        entry = self._entries.get(token)
        if entry is not None and now < entry[0]:
            return entry[1]
        merchant_id, expires = _verified_claims(token, self._secret)
        merchant = await _merchant(merchant_id)
        self._entries[token] = (min(now + self._seconds, expires), merchant)
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)
        return merchant


async def end_sessions(merchant: Merchant) -> None:
    """Invalidate every browser session of the merchant (cookies carry the version)."""
    await Merchant.filter(id=merchant.id).update(session_version=F("session_version") + 1)

"""The fake PSP lives in tests/psp_fake.py (a plugin of tests/conftest.py), shared with the
tests of the PSP connection; its names stay importable from here."""

from tests.psp_fake import (
    CHAVE,
    CLIENT_ID,
    CLIENT_SECRET,
    FakePsp,
    Pki,
    pem_chain,
    pem_key,
    problem,
)

__all__ = [
    "CHAVE",
    "CLIENT_ID",
    "CLIENT_SECRET",
    "FakePsp",
    "Pki",
    "pem_chain",
    "pem_key",
    "problem",
]

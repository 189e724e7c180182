"""Charges' service functions that need no database."""

from __future__ import annotations

from collections import Counter

from pixweb.services.payments import TXID_ALPHABET, TXID_LENGTH, new_txid


def test_txids_are_25_alphanumerics_drawn_uniformly() -> None:
    txids = [new_txid() for _ in range(4000)]
    assert len(set(txids)) == len(txids)
    assert all(len(t) == TXID_LENGTH and t.isascii() and t.isalnum() for t in txids)
    counts = Counter("".join(txids))
    assert set(counts) == set(TXID_ALPHABET)
    expected = len(txids) * TXID_LENGTH / len(TXID_ALPHABET)  # ~1,613 each
    # A plain `byte % 62` would draw the first 8 characters 25% more often than the rest.
    assert all(abs(n - expected) < 0.12 * expected for n in counts.values()), counts

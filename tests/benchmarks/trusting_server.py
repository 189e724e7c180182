"""`pixweb.cli` trusting one more CA (scenario 7's receivers): `BENCH_EXTRA_CA` names a PEM.

The delivery worker's HTTP client ignores SSL_CERT_FILE (trust_env=False, on purpose) and
verifies with certifi's bundle; this serves with that bundle plus the receivers' CA, as a
deployment adds a private CA to its trust store. One worker only (the patch is this
process's)."""

from __future__ import annotations

import os
from pathlib import Path

import certifi


def main() -> None:
    extra = Path(os.environ["BENCH_EXTRA_CA"])
    bundle = extra.with_name("trusted-bundle.pem")
    bundle.write_text(Path(certifi.where()).read_text() + extra.read_text())
    certifi.where = lambda: str(bundle)
    from pixweb.cli import main as cli

    cli()


if __name__ == "__main__":
    main()

"""pixweb's own sandbox PSP: the API Pix subset pixweb calls, served at `/sandbox/psp` in
development only (never registered in production), over its own tables (`Sandbox*` models).

A merchant reaches it exactly as it reaches a real PSP, through `pixweb.psp.client.PspClient`
(with `plain_http=True`: the sandbox speaks plain HTTP and asks for no client certificate),
with the credentials `auth.client_credentials` derives from the app's secret, so nothing
more is stored. Bodies are `pixweb.psp.schemas` models; errors are RFC 7807 problems.

- `auth`: client credentials and the signed, expiring access tokens with their scopes;
- `problems`: the API Pix's error types (`SandboxError`), pydantic errors as `violacoes`;
- `cobs`, `received`, `devolucoes`, `webhooks`: charges, received Pix (and `GET /pix`),
  refunds and webhook URLs, as the API Pix shows them; `location`: what a dynamic code's
  URL serves; `ids`: BCB-format e2eids and rtrIds, made-up payers;
- `scenarios`: what payers do (pay exactly, twice, another amount, late, to the key...):
  the functions the app's own simulate route calls;
- `worker`: what a PSP does on its own: webhook deliveries with retries, and refunds that
  settle after a delay;
- `routes` (the blueprint), `payer` (its payment simulations) and `http` (request helpers,
  `get_worker`): the only modules here that import the web framework.

Settings (Quart config, e.g. through `Config.extra`): SANDBOX_PSP_REFUND_SECONDS (2),
SANDBOX_PSP_WEBHOOK_ATTEMPTS (3), SANDBOX_PSP_WEBHOOK_BACKOFF_SECONDS (0.5, doubling).
"""

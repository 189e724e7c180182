"""The merchant's PSP, reached through the Banco Central's API Pix.

`schemas` models the subset pixweb uses; `client.PspClient` calls it. Under it: `tls` checks
the merchant's PEM material and builds the mTLS context, `auth` keeps the OAuth2 token, and
`transport` holds the pooled HTTP client, the retry policy and the mapping of every failure
to the `PspError` family of `pixweb.errors`. None of these import the web framework.

`sandbox` is pixweb's own PSP for development (`/sandbox/psp`, never in production): the
same API Pix subset over its own tables, reached through the same `PspClient` with
`plain_http=True`; merchants are connected to it by default when developing
(`pixweb.services.psp_sandbox`), and its scenarios pay charges as real payers would.
"""

"""The merchant's PSP, reached through the Banco Central's API Pix.

`schemas` models the subset pixweb uses; `client.PspClient` calls it. Under it: `tls` checks
the merchant's PEM material and builds the mTLS context, `auth` keeps the OAuth2 token, and
`transport` holds the pooled HTTP client, the retry policy and the mapping of every failure
to the `PspError` family of `pixweb.errors`. None of these import the web framework.
"""

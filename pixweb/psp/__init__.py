"""The merchant's PSP, reached through the Banco Central's API Pix.

`schemas` models the subset pixweb uses; `client.PspClient` calls it over mTLS with an
OAuth2 token (`tls` builds the TLS context from the merchant's PEM material; `transport`
holds the retry policy and maps failures to the `PspError` family of `pixweb.errors`).
"""

"""WebSocket routes: payer pages, the merchant dashboard and the bank-style JSON protocol.

Every socket subscribes first, then sends the current state read from the database, then
pushes each change: a change between the two is pushed, not lost, and a reconnecting
client (htmx's ws extension reconnects by itself) is resynced the same way.
"""

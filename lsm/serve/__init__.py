"""Serving a database to other processes (lsm.connect's clients).

requests carries out one decoded request against a DB and keeps each
client's snapshots and iterators; server owns the sockets and the threads.
The wire format is lsm.ipc.client_codec's; the client is lsm.client.
Knows an open DB (its public API, and the engine's group commit for a
client's encoded batch) and lsm.ipc's client protocol."""

"""Writer <-> compactor transport. messages and codec are pure (no sockets, no
files); launch starts processes; pool owns the ROUTER socket, the workers and
the job attempts; worker is the compactor process's socket loop, which runs
each job with a function the pool names as "module:qualname" (imported in the
child), so nothing here imports lsm.compactor or lsm.writer.

Client <-> server: client_messages and client_codec (pure), client_errors
(exceptions across the boundary, pure), announce (the SERVER file and the
database's identity), client_connection (a client's sockets); the server is
lsm.serve.

Nothing is imported here, so importing the pure parts pulls in neither zmq
nor psutil."""

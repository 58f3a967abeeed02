"""Writer <-> compactor transport. messages and codec are pure (no sockets, no
files); launch starts processes; pool owns the ROUTER socket, the workers and
the job attempts. The worker side is lsm.compactor.worker. Nothing is imported
here, so importing the pure parts pulls in neither zmq nor psutil."""

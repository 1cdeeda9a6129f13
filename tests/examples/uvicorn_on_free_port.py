"""Serves `app:app` from the directory given on 127.0.0.1 on a port the OS picks, and
prints that port first (for tests/it/examples.rs), then serves until killed."""

import socket
import sys

import uvicorn

sys.path.insert(0, sys.argv[1])
sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
sock.bind(("127.0.0.1", 0))
sock.listen(128)  # connections wait in the backlog until uvicorn accepts them
print(sock.getsockname()[1], flush=True)
uvicorn.Server(uvicorn.Config("app:app", log_level="warning")).run(sockets=[sock])

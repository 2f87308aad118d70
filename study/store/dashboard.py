"""`python -m study dashboard`: optuna-dashboard on a study's storage, with its artifacts.

Binds to loopback unless another host is asked for, since the dashboard has no login. Plain
`optuna-dashboard URL --artifact-dir DIR` serves the same storage and artifacts.

The server runs on a background thread and the main thread waits for Ctrl-C or SIGTERM: a
signal raised inside request handling (or a finalizer there) can be swallowed, and the
server would keep running; here it is only recorded, and acted on by the waiting loop.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from study import interrupts
from study.store.artifacts import artifact_dir, stores_of_storage
from study.store.storage import StorageLocation, open_storage

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def dashboard_app(location: StorageLocation, artifacts: str | None = None):
    """optuna-dashboard's WSGI app on the storage, serving the artifacts of every study in it:
    the folder beside the storage and each shared store a study recorded (and `artifacts`)."""
    import optuna_dashboard

    store, urls = stores_of_storage(location, artifacts)
    return optuna_dashboard.wsgi(open_storage(location), artifact_store=store), urls


def serve_dashboard(location: StorageLocation, host: str = "127.0.0.1", port: int = 8080,
                    artifacts: str | None = None) -> int:
    """Serve until interrupted; returns the exit code."""
    if host not in LOOPBACK_HOSTS:
        print(f"warning: serving on {host}: anyone who can reach this port sees and can edit the studies "
              "(optuna-dashboard has no login)", file=sys.stderr, flush=True)
    app, urls = dashboard_app(location, artifacts)
    print(f"dashboard: http://{host}:{port}/  storage {location.display}  artifacts "
          f"{', '.join([str(artifact_dir(location)), *urls])}", flush=True)
    serve_until_signal(app, host, port)
    return 0


class QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # one line per request is noise in a terminal
        pass


class IPv6Server(WSGIServer):
    address_family = socket.AF_INET6


def serve_until_signal(app, host: str, port: int) -> None:
    """Serve the WSGI `app` on `host:port` until Ctrl-C or SIGTERM."""
    server = make_server(host, port, app, server_class=IPv6Server if ":" in host else WSGIServer,
                         handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="dashboard-server", daemon=True).start()
    with interrupts.deferred():
        while not interrupts.requested():
            time.sleep(0.1)

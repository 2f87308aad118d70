"""`python -m study dashboard`: optuna-dashboard on a study's storage, with its artifacts.

Binds to loopback unless another host is asked for, since the dashboard has no login. Plain
`optuna-dashboard URL --artifact-dir DIR` serves the same storage and artifacts.
"""

from __future__ import annotations

import sys

from study.artifacts import artifact_dir, artifact_store
from study.storage import StorageLocation, open_storage

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def serve_dashboard(location: StorageLocation, host: str = "127.0.0.1", port: int = 8080) -> int:
    """Serve until interrupted; returns the exit code."""
    import optuna_dashboard

    if host not in LOOPBACK_HOSTS:
        print(f"warning: serving on {host}: anyone who can reach this port sees and can edit the studies "
              "(optuna-dashboard has no login)", file=sys.stderr, flush=True)
    storage = open_storage(location)
    print(f"dashboard: http://{host}:{port}/  storage {location.display}  artifacts {artifact_dir(location)}",
          flush=True)
    optuna_dashboard.run_server(storage, host=host, port=port, artifact_store=artifact_store(location))
    return 0

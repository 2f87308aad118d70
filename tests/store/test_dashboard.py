"""optuna-dashboard on a study's storage: a real server on a free loopback port; export round trip."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pandas as pd
import pytest

from tests.commands import study_cli
from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_dashboard_lists_the_study_and_serves_a_trial_artifact(demo_run):
    """The dashboard on the demo's finished study (11 trials, run once per session)."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    server = subprocess.Popen([sys.executable, "-m", "study", "dashboard", "--storage", demo_run.storage,
                               "--port", str(port)],
                              cwd=demo_run.folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                studies = get_json(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            raise AssertionError("the dashboard did not answer within 20 s")
        (summary,) = [s for s in studies if s["study_name"] == "demo"]
        detail = get_json(f"{base}/api/studies/{summary['study_id']}")
        assert len(detail["trials"]) == 11
        assert detail["objective_names"] == ["validation accuracy"]
        first = detail["trials"][0]
        assert "Trial 0: complete" in first["note"]["body"]
        (curve,) = [a for a in first["artifacts"] if a["mimetype"] == "image/png"]
        assert curve["filename"] == "learning_curve_trial_0.png"
        models = [a["filename"] for t in detail["trials"] for a in t["artifacts"] if a["filename"].endswith(".keras")]
        assert models and set(models) == {"demo.best.keras"}  # attached to each trial that was the best
        with_model = [t["number"] for t in detail["trials"] if any(a["filename"].endswith(".keras") for a in t["artifacts"])]
        assert detail["best_trials"][0]["number"] == max(with_model)
        url = f"{base}/artifacts/{summary['study_id']}/{first['trial_id']}/{curve['artifact_id']}"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read(8) == b"\x89PNG\r\n\x1a\n"
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert server.returncode == 0


@pytest.mark.parametrize("host, warned", [("127.0.0.1", False), ("0.0.0.0", True)])
def test_dashboard_binds_where_asked_and_warns_off_loopback(tmp_path, monkeypatch, capsys, host, warned):
    import optuna_dashboard

    from study.store import dashboard
    from study.store.storage import resolve_storage

    calls = []
    monkeypatch.setattr(optuna_dashboard, "wsgi", lambda storage, **kwargs: ("app", kwargs))
    monkeypatch.setattr(dashboard, "serve_until_signal", lambda app, host, port: calls.append((app, host, port)))
    assert dashboard.serve_dashboard(resolve_storage("sqlite:///s.db", tmp_path), host=host, port=8123) == 0
    ((app, kwargs), served_host, served_port), = calls
    assert served_host == host and served_port == 8123
    assert kwargs["artifact_store"] is not None and (tmp_path / "artifacts").is_dir()
    assert ("no login" in capsys.readouterr().err) == warned


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_export_round_trips_through_pandas(demo_run, fmt):
    import optuna

    result = study_cli("export", "--study-name", "demo", "--storage", demo_run.storage, "--format", fmt,
                       cwd=demo_run.folder)
    assert result.returncode == 0, result.stderr[-1500:]
    frame = pd.read_csv(io.StringIO(result.stdout)) if fmt == "csv" else pd.read_json(io.StringIO(result.stdout))
    trials = optuna.load_study(study_name="demo", storage=demo_run.storage).trials
    assert len(frame) == len(trials) == 11
    assert list(frame["state"]) == [t.state.name for t in trials]
    done = frame[frame["state"] == "COMPLETE"]
    assert len(done) >= 7  # the seven are never pruned
    assert list(done["value"]) == pytest.approx([t.value for t in trials if t.state.name == "COMPLETE"])
    assert set(done["params_head_depth"]) <= {1, 2, 3, 4}
    assert done["value"].between(0, 1).all()
    history = json.loads(done["user_attrs_history"].iloc[0])
    assert len(history["val_accuracy"]) == 8

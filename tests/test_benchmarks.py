"""The benchmark scripts keep working: each runs in --smoke mode (generated images, not timed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

BENCHMARKS = ["cached_vs_naive", "input_pipeline", "pruning", "memory", "time_to_seven", "gpu", "trial_overhead",
              "backends", "many_workers", "jobs", "command_exit", "keras_import"]


@pytest.mark.slow
@pytest.mark.parametrize("name", BENCHMARKS)
def test_benchmark_smoke_run_prints_its_table_and_ratio(name):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{name}.py"), "--smoke"],
                            capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("|---|") for line in lines)
    assert lines[-1].startswith("ratio ")

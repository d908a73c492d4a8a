"""Real Ray clusters on this machine: EnvRunner placement on a worker node, and Ray Jobs.

Both run in subprocesses with a private ``RAY_TMPDIR`` and 127.0.0.1 addresses, so they never
share, join or disturb the session's Ray instance (or anyone else's): see ``_ray_utils``. The
scripts they run print what they checked and are usable on their own.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from tests.integration._ray_utils import isolated_ray_env, run

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.cluster


def last_json_line(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError(f"no JSON summary in output:\n{text[-3000:]}")


def test_env_runners_run_on_the_worker_node_of_a_two_node_cluster():
    with isolated_ray_env() as env:
        proc = run([sys.executable, str(HERE / "cluster_placement_check.py")], env, timeout=420)
    output = proc.stdout + "\n" + proc.stderr[-3000:]
    summary = last_json_line(proc.stdout)
    assert summary["worker_node"] != summary["head_node"]
    assert summary["env_runner_nodes"] == [summary["worker_node"]], output
    assert summary["env_steps"] > 0
    # `rllib-marl-meta train --ray-address` on the same cluster.
    assert summary["cli_returncode"] == 0 and summary["cli_shows_delta"], output
    assert proc.returncode == 0, output


@pytest.mark.skipif(
    importlib.util.find_spec("aiohttp") is None,
    reason="Ray job submission needs ray[default]: pip install -e '.[cluster]'",
)
def test_ray_job_submit_runs_the_cli_on_a_head_node():
    with isolated_ray_env() as env:
        proc = run([sys.executable, str(HERE / "ray_job_check.py")], env, timeout=420)
    output = proc.stdout[-6000:] + "\n" + proc.stderr[-3000:]
    summary = last_json_line(proc.stdout)
    assert summary["status"] == "SUCCEEDED", output
    assert all(summary["checks"].values()), summary
    assert proc.returncode == 0, output

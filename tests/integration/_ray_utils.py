"""Helpers for tests that start their own Ray clusters, isolated from the session's Ray.

Every cluster started here gets its own ``RAY_TMPDIR``: Ray keeps its sessions and the
"current cluster" address file there, so a bare ``ray.init()`` elsewhere on the machine (other
tests, other processes) never finds and joins these clusters, and they never join another.
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` makes Ray use 127.0.0.1 as the node address (as it does
on macOS) instead of the machine's network address, so all traffic stays on the loopback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
# A MAML config small enough for one iteration in seconds: `--config` for tuned examples.
TINY_MAML = {
    "num_env_runners": 0,
    "meta_batch_size": 2,
    "episodes_per_task": 1,
    "maml_optimizer_steps": 1,
    "env_config": {"horizon": 10},
    "model_config": {"fcnet_hiddens": [8]},
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def isolated_ray_env() -> Iterator[dict[str, str]]:
    """Environment for a subprocess with a private, short ``RAY_TMPDIR`` (removed afterwards).

    The path is short on purpose: Ray puts Unix sockets below it (at most 107 characters).
    """
    tmp = tempfile.mkdtemp(prefix="rmm-", dir="/tmp")
    env = dict(os.environ)
    for key in ("RAY_ADDRESS", "RAY_TMPDIR", "TMPDIR"):
        env.pop(key, None)
    env.update(
        RAY_TMPDIR=tmp,
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
        RAY_USAGE_STATS_ENABLED="0",
        RAY_DEDUP_LOGS="0",
        PYTHONUNBUFFERED="1",
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}".rstrip(os.pathsep),
    )
    try:
        yield env
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(cmd: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Runs a command to completion, capturing text output."""
    return subprocess.run(
        cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )

"""Shared fixtures. Ray starts once per session, with 2 CPUs as on CI."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance shared by every test that needs one."""
    import ray

    import rllib_marl_meta  # noqa: F401  (registers envs and algorithms)

    if not ray.is_initialized():
        # RLlib's multi-agent connectors iterate sets of agent IDs, whose order depends on each
        # process's hash seed; a fixed seed makes worker processes agree (see README, MAML).
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": {"PYTHONHASHSEED": "0"}},
        )
    yield ray
    ray.shutdown()

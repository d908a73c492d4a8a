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


def aec_cooperative_navigation(config: dict):
    """CooperativeNavigation as a PettingZoo AECEnv under RLlib's turn-based PettingZooEnv."""
    from pettingzoo.utils.conversions import parallel_to_aec
    from ray.rllib.env.wrappers.pettingzoo_env import PettingZooEnv

    from rllib_marl_meta.envs.cooperative_navigation import CooperativeNavigation

    return PettingZooEnv(parallel_to_aec(CooperativeNavigation(dict(config))))


@pytest.fixture(scope="session")
def aec_env_name(ray_session) -> str:
    """The registered name of ``aec_cooperative_navigation`` (a turn-based AEC env)."""
    from ray.tune.registry import register_env

    register_env("AECCooperativeNavigation", aec_cooperative_navigation)
    return "AECCooperativeNavigation"

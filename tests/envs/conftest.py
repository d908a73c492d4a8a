"""Shared by the env tests."""

from __future__ import annotations

import time

import pytest


@pytest.fixture
def parallel_steps_per_second():
    """``rate(env, actions, steps=3000)``: steps/s of a PettingZoo parallel env taking the same
    actions every step (reset whenever an episode ends)."""

    def rate(env, actions: dict, steps: int = 3000) -> float:
        env.reset(seed=0)
        start = time.perf_counter()
        for _ in range(steps):
            if not env.agents:
                env.reset()
            env.step(actions)
        return steps / (time.perf_counter() - start)

    return rate

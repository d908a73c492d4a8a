"""Shared by the benchmarks: wall-clock accounting of the calls an algorithm makes."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable


def timed_into(totals: dict[str, float], name: str, fn: Callable) -> Callable:
    """Wraps ``fn`` so that every call adds its wall-clock seconds to ``totals[name]``."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - start

    return wrapper


def alternate_iterations(algos: dict, iters: int, warmup: int) -> dict[str, dict[str, list]]:
    """Times ``train()`` of PPO-based algorithms, their iterations alternating.

    After ``warmup`` iterations each, ``iters`` rounds run one iteration of every algorithm, so
    all see the same machine load. Per algorithm: the wall time of each ``train()`` (``total``),
    its parts in RLlib's ``synchronous_parallel_sample`` (``sample``) and
    ``LearnerGroup.update`` (``learn``), and the env steps it sampled (``steps``).
    """
    import ray.rllib.algorithms.ppo.ppo as ppo_module

    phases = {"sample": 0.0, "learn": 0.0}
    original_sample = ppo_module.synchronous_parallel_sample
    ppo_module.synchronous_parallel_sample = timed_into(phases, "sample", original_sample)
    try:
        for algo in algos.values():
            algo.learner_group.update = timed_into(phases, "learn", algo.learner_group.update)
            for _ in range(warmup):
                algo.train()
        times = {name: {"total": [], "sample": [], "learn": [], "steps": []} for name in algos}
        for _ in range(iters):
            for name, algo in algos.items():
                phases.update(sample=0.0, learn=0.0)
                start = time.perf_counter()
                result = algo.train()
                times[name]["total"].append(time.perf_counter() - start)
                times[name]["sample"].append(phases["sample"])
                times[name]["learn"].append(phases["learn"])
                times[name]["steps"].append(result["env_runners"]["num_env_steps_sampled"])
        return times
    finally:
        ppo_module.synchronous_parallel_sample = original_sample

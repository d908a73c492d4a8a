"""The README's main job. Until MAML lands: a demo that tasks change the dynamics."""

from __future__ import annotations

import numpy as np

from rllib_marl_meta.envs import BUILTIN_ENVS, make_env


def task_demo(seed: int = 0, steps: int = 20) -> None:
    """Samples two tasks per built-in env and prints the return of the same action sequence."""
    for name in BUILTIN_ENVS:
        env = make_env(name)
        tasks = env.sample_tasks(2, seed=seed)
        rng = np.random.default_rng(seed)
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(steps)]
        returns = []
        for task in tasks:
            env.reset(seed=seed, options={"task": task})
            total = 0.0
            for action in actions:
                _, reward, terminated, truncated, _ = env.step(action)
                total += reward
                if terminated or truncated:
                    env.reset(seed=int(rng.integers(1 << 30)))
            returns.append(total)
        print(f"{name:20s} task A return {returns[0]:8.3f} | task B return {returns[1]:8.3f}")


if __name__ == "__main__":
    task_demo()

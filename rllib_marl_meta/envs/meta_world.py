"""Meta-World's ML1 and ML10 benchmarks as task distributions, with their train/test split.

Meta-World (extra ``metaworld``) ships each benchmark as fixed lists of train tasks and test
tasks: for ML1, 50 goal positions of one manipulation task each; for ML10, 50 goals of each of
10 training task types and of 5 held-out task types. Here a task is ``{"index": i}``, a position
in the train list followed by the test list (``i >= num_train_tasks`` is a test task);
``sample_tasks(n, split="test")`` draws from the test list, and ``meta_test`` uses it. The
benchmark object is built through ``metaworld.ML1(name)`` / ``metaworld.ML10()`` (not the
registered ``ML1-train`` gym ids, which hand out test-split tasks), once per process.

Episodes end by truncation only (Meta-World's 500-step limit, or ``horizon``), never by
termination. Each step's info carries Meta-World's ``success`` flag (1.0 while the goal is
reached); an episode succeeded if the flag was set at any step.
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np

from rllib_marl_meta.envs._config import (
    anything,
    integer,
    read_env_config,
    seed_key,
    task_key,
)
from rllib_marl_meta.tasks import Task, TaskField, TaskSettableMixin, TaskSpace
from rllib_marl_meta.tasks.api import check_split

SPLIT_IDS = {"train": 0, "test": 1}
MAX_EPISODE_STEPS = 500  # Meta-World's own limit (``max_path_length``).


@functools.lru_cache(maxsize=8)
def benchmark(kind: str, env_name: str | None, seed: int) -> Any:
    """Meta-World's benchmark object (its task lists), built once per process."""
    try:
        import metaworld
    except ImportError as exc:
        raise ImportError(
            "Meta-World envs need metaworld: pip install -c constraints.txt "
            "'rllib-marl-meta[metaworld]'."
        ) from exc
    if kind == "ML1":
        names = sorted(metaworld.ML1.ENV_NAMES)
        if env_name not in names:
            raise ValueError(
                f"MetaWorldML1: unknown env_name {env_name!r}; Meta-World's ML1 names are "
                f"{', '.join(names)}."
            )
        return metaworld.ML1(env_name, seed=seed)
    return metaworld.ML10(seed=seed)


class MetaWorld(TaskSettableMixin, gym.Env):
    """One Meta-World benchmark (``ML1`` or ``ML10``) as a gymnasium env with tasks.

    ``kind``: the benchmark (the registered names ``MetaWorldML1`` / ``MetaWorldML10`` set it).
    Config: ``env_name`` (ML1 only: one of Meta-World's 50 names, default ``reach-v3``),
    ``benchmark_seed`` (0: the seed of Meta-World's own goal lists), ``horizon`` (at most 500),
    ``seed``, ``task``. Observations are Meta-World's 39 floats (as float32), actions its 4.
    """

    metadata = {"render_modes": []}
    CONFIG_KEYS = {
        "env_name": anything("reach-v3", "a Meta-World ML1 env name such as 'reach-v3'"),
        "benchmark_seed": integer(0, minimum=0),
        "horizon": integer(MAX_EPISODE_STEPS, minimum=1, maximum=MAX_EPISODE_STEPS),
        "seed": seed_key(),
        "task": task_key(),
    }

    def __init__(self, config: dict | None = None, kind: str = "ML1") -> None:
        config = read_env_config(type(self).__name__, config, self.CONFIG_KEYS)
        self._benchmark = benchmark(
            kind, config["env_name"] if kind == "ML1" else None, config["benchmark_seed"]
        )
        self._tasks = (self._benchmark.train_tasks, self._benchmark.test_tasks)
        self._classes = {**self._benchmark.train_classes, **self._benchmark.test_classes}
        self.horizon = config["horizon"]
        self._all_tasks = [*self._tasks[0], *self._tasks[1]]
        self.num_train_tasks = len(self._tasks[0])
        self.task_space = TaskSpace(index=TaskField(0, len(self._all_tasks) - 1, integer=True))
        self._envs: dict[str, Any] = {}
        self._env: Any = None
        first = self._make(self._tasks[0][0].env_name)
        space = first.observation_space
        self.observation_space = gym.spaces.Box(
            space.low.astype(np.float32), space.high.astype(np.float32), dtype=np.float32
        )
        self.action_space = first.action_space
        self.np_random = np.random.default_rng(config["seed"])
        self._t = 0
        self.set_task(config["task"] if config["task"] is not None else self.default_task())

    # --- task API -----------------------------------------------------------------------------

    def sample_tasks(self, n: int, seed: int | None = None, split: str = "train") -> list[Task]:
        """``n`` tasks of the benchmark's ``split``, without repeats while there are enough."""
        check_split(split)
        rng = np.random.default_rng(seed) if seed is not None else self.np_random
        size = len(self._tasks[SPLIT_IDS[split]])
        first = 0 if split == "train" else self.num_train_tasks
        indices = rng.choice(size, size=n, replace=n > size)
        return [{"index": first + int(i)} for i in indices]

    def default_task(self) -> Task:
        return {"index": 0}

    def split_of(self, task: Task) -> str:
        """``"train"`` or ``"test"``: the benchmark split that ``task`` belongs to."""
        return "train" if int(task["index"]) < self.num_train_tasks else "test"

    def _apply_task(self, task: Task) -> None:
        task = self._all_tasks[int(task["index"])]
        self._env = self._make(task.env_name)
        self._env.set_task(task)

    @property
    def env_name(self) -> str:
        """The Meta-World env of the current task (e.g. ``reach-v3``)."""
        return self._all_tasks[int(self._current_task["index"])].env_name

    # --- gymnasium API ------------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.np_random = np.random.default_rng(seed)
        self._reset_task_from_options(options)
        obs, info = self._env.reset(seed=seed)
        self._t = 0
        return obs.astype(np.float32), info

    def step(self, action: Any):
        obs, reward, _, truncated, info = self._env.step(action)
        self._t += 1
        info = {**info, "success": float(info.get("success", 0.0))}
        truncated = bool(truncated) or self._t >= self.horizon
        return obs.astype(np.float32), float(reward), False, truncated, info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def _make(self, env_name: str) -> Any:
        if env_name not in self._envs:
            self._envs[env_name] = self._classes[env_name]()
        return self._envs[env_name]


class MetaWorldML1(MetaWorld):
    """Meta-World ML1: 50 train and 50 test goals of one task (``env_name``)."""

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config, kind="ML1")


class MetaWorldML10(MetaWorld):
    """Meta-World ML10: 10 training task types, 5 held-out test task types, 50 goals each."""

    CONFIG_KEYS = {k: v for k, v in MetaWorld.CONFIG_KEYS.items() if k != "env_name"}

    def __init__(self, config: dict | None = None) -> None:
        super().__init__(config, kind="ML10")

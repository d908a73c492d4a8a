"""The task API: how meta-learning algorithms draw, set and read tasks of an env."""

from rllib_marl_meta.tasks.api import (
    TASK_API_METHODS,
    Task,
    TaskAPIError,
    TaskField,
    TaskSettable,
    TaskSettableMixin,
    TaskSpace,
    draw_tasks,
    has_task_api,
    missing_task_methods,
)
from rllib_marl_meta.tasks.finders import (
    find_task_env,
    get_tasks,
    require_task_env,
    set_task_on_all,
    set_task_on_env_runner,
    set_tasks,
    set_tasks_on_env_runner,
    sub_envs,
)
from rllib_marl_meta.tasks.wrappers import (
    AECTaskWrapper,
    NewTaskEachEpisode,
    NewTaskEachEpisodeParallel,
    ParameterTaskWrapper,
    PettingZooTaskWrapper,
)

__all__ = [
    "TASK_API_METHODS",
    "AECTaskWrapper",
    "NewTaskEachEpisode",
    "NewTaskEachEpisodeParallel",
    "ParameterTaskWrapper",
    "PettingZooTaskWrapper",
    "Task",
    "TaskAPIError",
    "TaskField",
    "TaskSettable",
    "TaskSettableMixin",
    "TaskSpace",
    "draw_tasks",
    "find_task_env",
    "get_tasks",
    "has_task_api",
    "missing_task_methods",
    "require_task_env",
    "set_task_on_all",
    "set_task_on_env_runner",
    "set_tasks",
    "set_tasks_on_env_runner",
    "sub_envs",
]

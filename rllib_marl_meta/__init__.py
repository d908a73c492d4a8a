"""Meta-reinforcement learning (MAML, RL²) for Ray RLlib's new API stack.

``import rllib_marl_meta`` registers the algorithms (``"MAML"``, ``"RL2"``) and the built-in
task distributions with Ray Tune, so ``tune.Tuner("MAML", ...)`` and
``config.environment("PointNavigation2D")`` work. The algorithms are exported here too:
``from rllib_marl_meta import MAML, MAMLConfig, RL2, RL2Config``.
"""

from rllib_marl_meta.algorithms.maml import MAML, MAMLConfig
from rllib_marl_meta.algorithms.rl2 import RL2, RL2Config
from rllib_marl_meta.envs import BUILTIN_ENVS, make_env, register_envs
from rllib_marl_meta.tasks import (
    ParameterTaskWrapper,
    PettingZooTaskWrapper,
    Task,
    TaskAPIError,
    TaskField,
    TaskSettableMixin,
    TaskSpace,
)

__version__ = "0.1.0"

ALGORITHMS: dict[str, str] = {
    "MAML": "rllib_marl_meta.algorithms.maml:MAML",
    "RL2": "rllib_marl_meta.algorithms.rl2:RL2",
}


def register() -> None:
    """Registers built-in envs and algorithms with Ray Tune (idempotent)."""
    from ray.tune.registry import register_trainable

    register_envs()
    for name, path in ALGORITHMS.items():
        module, cls = path.rsplit(":", 1)
        register_trainable(name, getattr(__import__(module, fromlist=[cls]), cls))


register()

__all__ = [
    "ALGORITHMS",
    "BUILTIN_ENVS",
    "MAML",
    "MAMLConfig",
    "RL2",
    "RL2Config",
    "ParameterTaskWrapper",
    "PettingZooTaskWrapper",
    "Task",
    "TaskAPIError",
    "TaskField",
    "TaskSettableMixin",
    "TaskSpace",
    "make_env",
    "register",
    "register_envs",
]

"""RL² (Duan et al., 2016) as an RLlib Algorithm: PPO with a recurrent policy on trials.

``RL2`` *is* RLlib's PPO: same ``training_step``, Learner, loss, GAE and recurrent-state
handling. What RL² adds is the environment and the model:

* the user's env is wrapped automatically in a trial wrapper
  (:mod:`rllib_marl_meta.algorithms.rl2.trial_wrapper`), so one RLlib episode is a trial of
  ``episodes_per_trial`` episodes of one task and the RNN state carries across them;
* the default PPO RLModule is made recurrent (``use_lstm``), with an LSTM or a GRU cell
  (:class:`~rllib_marl_meta.algorithms.rl2.catalog.RL2Catalog`);
* a callback logs the return of each inner-episode index
  (:mod:`rllib_marl_meta.algorithms.rl2.callbacks`).

Usage::

    import rllib_marl_meta
    from rllib_marl_meta.algorithms.rl2 import RL2Config

    config = (
        RL2Config()
        .environment("BernoulliBandit", env_config={"num_arms": 5})
        .training(episodes_per_trial=10)
    )
    algo = config.build_algo()
    algo.train()["env_runners"]["trial_episode_10_return_mean"]

How the env is wrapped: :meth:`RL2Config.validate` creates one instance of the user's env on the
driver, checks it (task API, spaces, single- vs. multi-agent), registers a creator of the
wrapped env with Ray Tune under a derived name (``"RL2Trials[<env>|episodes_per_trial=<n>]"``)
and points ``config.env`` at it. Tune's registry lives in Ray's KV store, so remote EnvRunners
and restored checkpoints create the same wrapped env; the user's env stays available as
:attr:`RL2Config.inner_env`, and validating again (evaluation configs, checkpoints, Tune)
re-derives the name from it, never wrapping twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from ray.rllib.algorithms.algorithm_config import NotProvided
from ray.rllib.algorithms.ppo import PPO, PPOConfig
from ray.rllib.algorithms.ppo.default_ppo_rl_module import DefaultPPORLModule
from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env import INPUT_ENV_SINGLE_SPACES
from ray.rllib.env.env_context import EnvContext
from ray.rllib.utils import force_list
from ray.tune.registry import register_env

from rllib_marl_meta.algorithms.central_value import global_state_space
from rllib_marl_meta.algorithms.config_checks import (
    COMMON_SETTINGS,
    CheckedSettingsMixin,
    boolean,
    check_multi_agent_setup,
    integer,
    number,
    one_of,
    probe_env,
    torch_only,
)
from rllib_marl_meta.algorithms.rl2.callbacks import RL2MetricsCallback
from rllib_marl_meta.algorithms.rl2.catalog import RNN_CELLS, RL2Catalog
from rllib_marl_meta.algorithms.rl2.central_critic import (
    GLOBAL_STATE_SIZE_KEY,
    AddGlobalState,
    RL2CentralCriticModule,
)
from rllib_marl_meta.algorithms.rl2.meta_test import meta_test, stop_meta_test_runners
from rllib_marl_meta.algorithms.rl2.trial_wrapper import (
    MultiAgentRL2TrialWrapper,
    make_trial_env,
)
from rllib_marl_meta.checkpoints import CheckedCheckpointMixin
from rllib_marl_meta.envs.creation import close_env, env_creator
from rllib_marl_meta.meta_learner import MaxSetting
from rllib_marl_meta.tasks import TaskAPIError, require_task_env

TRIAL_ENV_PREFIX = "RL2Trials"
# The progress table shows at most this many inner-episode columns.
MAX_EPISODE_COLUMNS = 5

logger = logging.getLogger(__name__)


def env_label(env: Any) -> str:
    """A readable ASCII name for an env descriptor (a registered name or a class)."""
    label = env if isinstance(env, str) else f"{env.__module__}.{env.__qualname__}"
    return label.encode("ascii", "backslashreplace").decode("ascii")


def trial_env_name(env: Any, episodes_per_trial: int) -> str:
    """The Tune-registry name under which RL² registers the trial-wrapped ``env``."""
    return f"{TRIAL_ENV_PREFIX}[{env_label(env)}|episodes_per_trial={episodes_per_trial}]"


class TrialEnvCreator:
    """Picklable env creator: the user's env, wrapped in RL² trials."""

    def __init__(self, inner_creator: Callable[[dict], Any], episodes_per_trial: int) -> None:
        self.inner_creator = inner_creator
        self.episodes_per_trial = int(episodes_per_trial)

    def __call__(self, env_context: dict) -> Any:
        return make_trial_env(self.inner_creator(env_context), self.episodes_per_trial)


class RL2Config(CheckedSettingsMixin, PPOConfig):
    """Configuration of :class:`RL2`: PPO's settings plus the RL² trial and RNN settings.

    Defaults follow garage's RL²-PPO where RLlib's PPO differs: GRU with 64 units,
    ``gamma=0.99``, ``lambda_=0.95``, ``clip_param=0.2``, 10 epochs per batch, Adam with
    ``lr=1e-3`` and no KL penalty. The RLModule is RLlib's default PPO module made recurrent: one
    ``cell_size`` dense layer, the RNN, linear policy and value heads, separate actor and critic.
    ``max_seq_len`` (50) is the backprop-through-time chunk; set it to the trial length when
    trials are short (bandits) to avoid padding.

    Every numeric setting is range-checked where it is set (see ``SETTINGS``).
    """

    SETTINGS = COMMON_SETTINGS | {
        # PPO.
        "lambda_": number(0.0, 1.0),
        "clip_param": number(0.0, low_open=True),
        "vf_clip_param": number(0.0, low_open=True),
        "vf_loss_coeff": number(0.0),
        "entropy_coeff": number(0.0, schedule=True),
        "kl_coeff": number(0.0),
        "kl_target": number(0.0, low_open=True),
        "num_epochs": integer(1),
        "minibatch_size": integer(1, optional=True),
        "use_gae": boolean(),
        "use_kl_loss": boolean(),
        "use_critic": boolean(),
        # RL².
        "episodes_per_trial": integer(1),
        "rnn_cell": one_of(*RNN_CELLS),
        "cell_size": integer(1),
        "max_seq_len": integer(1),
        "central_critic": boolean(),
        "framework_str": torch_only("RL2"),
    }

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or RL2)
        # RL² settings.
        self.episodes_per_trial: int = 10
        self.rnn_cell: str = "gru"
        self.cell_size: int = 64
        self.max_seq_len: int = 50
        self.central_critic: bool = False
        # garage RL²-PPO.
        self.gamma = 0.99
        self.lambda_ = 0.95
        self.clip_param = 0.2
        self.num_epochs = 10
        self.use_kl_loss = False
        self.lr = 1e-3
        # Whole trials per sample: no bootstrapping at arbitrary cut points inside a trial, and
        # RLlib 2.60's learner connector for recurrent modules fails on multi-agent episode
        # chunks in which an agent skipped steps (agents that finish an inner episode early
        # wait without observations).
        self.batch_mode = "complete_episodes"
        self.callbacks_class = RL2MetricsCallback
        # Bookkeeping of the env wrapping done in `validate()`.
        self._rl2_inner_env: Any = None
        self._rl2_env_name: str | None = None

    def training(
        self,
        *,
        episodes_per_trial: int = NotProvided,
        rnn_cell: str = NotProvided,
        cell_size: int = NotProvided,
        max_seq_len: int = NotProvided,
        central_critic: bool = NotProvided,
        **kwargs: Any,
    ) -> RL2Config:
        """Sets PPO's training settings (``**kwargs``) and RL²'s.

        Args:
            episodes_per_trial: Inner episodes per trial (each trial is one task and one
                RLlib episode; the RNN state carries across its inner episodes).
            rnn_cell: ``"gru"`` (garage's choice, the default) or ``"lstm"``.
            cell_size: Units of the recurrent cell (and of the one dense layer before it).
            max_seq_len: Length of the chunks that trials are cut into for truncated
                backprop through time; states at chunk starts are the ones from sampling.
            central_critic: multi-agent only: each agent's value head also sees the team's
                global state (every agent's trial observation at the step; see
                ``central_critic.py``); agents still act on their own observations.
        """
        super().training(**kwargs)
        if episodes_per_trial is not NotProvided:
            self.episodes_per_trial = episodes_per_trial
        if rnn_cell is not NotProvided:
            self.rnn_cell = rnn_cell
        if cell_size is not NotProvided:
            self.cell_size = cell_size
        if max_seq_len is not NotProvided:
            self.max_seq_len = max_seq_len
        if central_critic is not NotProvided:
            self.central_critic = central_critic
        return self

    @property
    def inner_env(self) -> Any:
        """The user's env descriptor, before RL² wrapped it in trials."""
        if self._rl2_env_name is not None and self.env == self._rl2_env_name:
            return self._rl2_inner_env
        return self.env

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        # A recurrent default PPO module; the user's `model_config` overrides these.
        return super()._model_config_auto_includes | {
            "use_lstm": True,
            "recurrent_layer_type": self.rnn_cell,
            "lstm_cell_size": self.cell_size,
            "max_seq_len": self.max_seq_len,
            "fcnet_hiddens": [self.cell_size],
        }

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        spec = super().get_default_rl_module_spec()
        spec.catalog_class = RL2Catalog
        if self.central_critic:
            spec.module_class = RL2CentralCriticModule
        return spec

    def get_multi_rl_module_spec(self, *, env=None, spaces=None, inference_only=False, **kwargs):
        spec = super().get_multi_rl_module_spec(
            env=env, spaces=spaces, inference_only=inference_only, **kwargs
        )
        if self.central_critic:  # Size each value head's global-state input.
            size = global_state_space(_agent_observation_spaces(env, spaces)).shape[0]
            for module_spec in spec.rl_module_specs.values():
                module_spec.model_config = {
                    **(module_spec.model_config or {}),
                    GLOBAL_STATE_SIZE_KEY: size,
                }
        return spec

    def build_learner_connector(self, input_observation_space, input_action_space, device=None):
        pipeline = super().build_learner_connector(
            input_observation_space=input_observation_space,
            input_action_space=input_action_space,
            device=device,
        )
        if self.central_critic:  # Before RLlib cuts and pads the columns into sequences.
            pipeline.insert_before("AddTimeDimToBatchAndZeroPad", AddGlobalState())
        return pipeline

    def validate(self) -> None:
        """PPO's checks, plus RL²'s; wraps the env in trials (see the module docstring)."""
        self._validate_rl2_settings()
        super().validate()
        self._ensure_metrics_callback()
        if self.central_critic and not self.is_multi_agent:
            raise ValueError(
                "RL2's central_critic=True gives each agent's value head the whole team's "
                "observations, for multi-agent envs; with one agent leave it False."
            )
        custom = [
            s.module_class.__name__
            for s in self._module_specs()
            if s.module_class is not None and not issubclass(s.module_class, RL2CentralCriticModule)
        ]
        if self.central_critic and custom:
            raise ValueError(
                f"RL2's central_critic=True needs RL2's own module, but the rl_module_spec "
                f"names {custom}. Drop the custom module classes, or subclass "
                "RL2CentralCriticModule."
            )
        trial_env = self._wrap_env()
        self._validate_recurrent_model(trial_env)

    def _validate_rl2_settings(self) -> None:
        problems = self.check_settings()
        if problems:
            raise ValueError("Invalid RL2Config:\n  - " + "\n  - ".join(problems))
        model_config = self.model_config
        if model_config.get("recurrent_layer_type") == "gru" and (
            model_config.get("lstm_kernel_initializer") or model_config.get("lstm_bias_initializer")
        ):
            raise ValueError(
                "RLlib's torch GRU encoder cannot apply `lstm_kernel_initializer` / "
                "`lstm_bias_initializer`. Remove them or use `training(rnn_cell='lstm')`."
            )

    def _ensure_metrics_callback(self) -> None:
        classes = [c for c in force_list(self.callbacks_class) if c is not RLlibCallback]
        if not any(isinstance(c, type) and issubclass(c, RL2MetricsCallback) for c in classes):
            classes.append(RL2MetricsCallback)
        self.callbacks_class = classes[0] if len(classes) == 1 else classes

    def _wrap_env(self) -> Any:
        """Checks the user's env on one driver-side instance and registers its trial version."""
        inner = self.inner_env
        if inner is None:
            raise ValueError(
                "RL2 needs an env with the task API: "
                "`RL2Config().environment('BernoulliBandit', env_config={...})`."
            )
        if isinstance(inner, str) and inner.startswith(f"{TRIAL_ENV_PREFIX}["):
            raise ValueError(
                f"`config.env` is {inner!r}, a name RL2 derives for its trial-wrapped env. Pass "
                "the original env instead: `config.environment('BernoulliBandit', ...)`."
            )
        creator = env_creator(inner)
        env = creator(EnvContext(dict(self.env_config or {}), worker_index=0))
        try:
            try:
                require_task_env(env)
            except TaskAPIError as err:
                raise TaskAPIError(
                    f"RL2 draws a new task for every trial, so its env needs the task API. {err}"
                ) from None
            probe_env(env, f"RL2 on env {env_label(inner)}")
            trial_env = make_trial_env(env, self.episodes_per_trial)
        except Exception:
            close_env(env)
            raise
        multi_agent = isinstance(trial_env, MultiAgentRL2TrialWrapper)
        try:
            check_multi_agent_setup(self, trial_env, f"RL2 on env {env_label(inner)}")
        except ValueError:
            close_env(trial_env)
            raise
        if multi_agent and self.batch_mode != "complete_episodes":
            logger.warning(
                "RL2 on a multi-agent env with batch_mode=%r: RLlib 2.60 raises an IndexError "
                "in AddStatesFromEpisodesToBatch when an episode is cut while an agent waits "
                "(e.g. it finished an inner episode early). Use "
                "`config.env_runners(batch_mode='complete_episodes')` (RL2's default) unless "
                "all agents always act together.",
                self.batch_mode,
            )
        name = trial_env_name(inner, self.episodes_per_trial)
        register_env(name, TrialEnvCreator(creator, self.episodes_per_trial))
        self._rl2_inner_env = inner
        self._rl2_env_name = name
        self.env = name
        return trial_env

    def _validate_recurrent_model(self, trial_env: Any) -> None:
        """Rejects non-recurrent RLModules: without memory there is no RL²."""
        try:
            specs = self._module_specs()
            default_modules = all(
                s.module_class is None or issubclass(s.module_class, DefaultPPORLModule)
                for s in specs
            )
            if default_modules:
                for spec in specs:
                    model_config = self.model_config | (spec.model_config or {})
                    if not model_config.get("use_lstm"):
                        raise ValueError(
                            "RL2 needs a recurrent policy: it remembers earlier inner episodes "
                            "of a trial only in its RNN state, but this config's model_config "
                            "has `use_lstm=False` (a `DefaultModelConfig(...)` sets it to False "
                            "unless given). Leave `use_lstm` out of `model_config` (RL2Config "
                            "turns it on) or pass `use_lstm=True`; pick the cell with "
                            "`training(rnn_cell='gru'|'lstm', cell_size=...)`."
                        )
                return
            module = self.get_multi_rl_module_spec(env=trial_env).build()
            stateless = [mid for mid, m in module.items() if not m.is_stateful()]
            if stateless:
                raise ValueError(
                    f"RL2 needs recurrent RLModules, but {stateless} are not stateful "
                    "(`get_initial_state()` is empty). Use RL2's default module "
                    "(drop the custom `rl_module_spec`) or give it a recurrent state."
                )
        finally:
            close_env(trial_env)

    def _module_specs(self) -> list[RLModuleSpec]:
        spec = self._rl_module_spec
        if spec is None:
            return [self.get_default_rl_module_spec()]
        if isinstance(spec, MultiRLModuleSpec):
            specs = spec.rl_module_specs
            return list(specs.values()) if isinstance(specs, dict) else [specs]
        return [spec]


def _agent_observation_spaces(env: Any, spaces: dict | None) -> dict:
    """Each agent's (trial) observation space, from an EnvRunner's spaces or a trial env."""
    single = (spaces or {}).get(INPUT_ENV_SINGLE_SPACES)
    if single is not None and isinstance(single[0], gym.spaces.Dict):
        return dict(single[0].spaces)
    found = getattr(env, "observation_spaces", None)
    if isinstance(found, dict):
        return dict(found)
    raise ValueError(
        "RL2's central critic needs the env's per-agent observation spaces; got neither an "
        "EnvRunner's spaces nor a multi-agent env."
    )


class RL2(CheckedCheckpointMixin, PPO):
    """RL²: RLlib's PPO on trials of ``episodes_per_trial`` episodes with a recurrent policy.

    Everything but the config is PPO's; see :class:`RL2Config` and the module docstring.
    """

    @classmethod
    def get_default_config(cls) -> RL2Config:
        return RL2Config()

    # One trial per held-out task, on an EnvRunner; see `rl2.meta_test.meta_test`.
    meta_test = meta_test

    @classmethod
    def progress_columns(cls, max_setting: MaxSetting) -> dict[str, str]:
        """The return of inner episodes 1..n of a trial (at most ``MAX_EPISODE_COLUMNS``,
        always the first and the last) and last minus first."""
        n = max_setting("episodes_per_trial", 10)
        if n <= MAX_EPISODE_COLUMNS:
            episodes = list(range(1, n + 1))
        else:
            step = (n - 1) / (MAX_EPISODE_COLUMNS - 1)
            episodes = sorted({1 + round(i * step) for i in range(MAX_EPISODE_COLUMNS)})
        columns = {f"env_runners/trial_episode_{i}_return_mean": f"ep {i} return" for i in episodes}
        columns["env_runners/trial_adaptation_mean"] = f"ep {n} - ep 1"
        return columns

    def stop(self) -> None:
        stop_meta_test_runners(self)
        super().stop()

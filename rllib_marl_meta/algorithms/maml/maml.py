"""MAML (Finn et al., 2017) as an RLlib Algorithm on the new API stack.

One iteration (``MAML.training_step``):

1. sample ``meta_batch_size`` tasks from the env's task distribution with a seeded RNG;
2. spread the tasks over the EnvRunners (any number of tasks on any number of runners, the
   local one included) and sample each task's pre-adaptation episodes ``D_0`` with ``theta``;
3. for ``k = 1..K``: the Learners compute each task's adapted parameters with the inner update,
   the runner sampling that task loads them and collects ``D_k``;
4. meta-update on the LearnerGroup: re-run each task's inner loop differentiably from
   ``theta`` and step on the outer loss on ``D_K``, ``maml_optimizer_steps`` times;
5. sync ``theta`` to the EnvRunners; report pre- and per-step post-adaptation returns.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import ray
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.algorithms.ppo.ppo import PPOConfig
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.rl_module.multi_rl_module import MultiRLModuleSpec
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode
from ray.rllib.utils.annotations import override
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

from rllib_marl_meta.algorithms.central_value import global_state_space
from rllib_marl_meta.algorithms.config_checks import (
    COMMON_SETTINGS,
    CheckedSettingsMixin,
    agent_ids,
    boolean,
    check_multi_agent_setup,
    integer,
    module_id_list,
    number,
    one_of,
    probe_env,
    torch_only,
)
from rllib_marl_meta.algorithms.maml.advantages import MetaAdvantages
from rllib_marl_meta.algorithms.maml.env_runner import MAMLEnvRunner, MultiAgentMAMLEnvRunner
from rllib_marl_meta.algorithms.maml.sampling import TaskJob, sample_task_episodes
from rllib_marl_meta.algorithms.maml.torch import maml_torch_learner
from rllib_marl_meta.algorithms.maml.torch.central_value import (
    CENTRAL_VALUE_MODULE_ID,
    central_value_spec,
)
from rllib_marl_meta.algorithms.plan_sampling import use_batched_action_transform
from rllib_marl_meta.checkpoints import CheckedCheckpointMixin
from rllib_marl_meta.envs.creation import (
    close_env,
    env_display_name,
    make_driver_env,
    register_class_path_env,
)
from rllib_marl_meta.meta_learner import MaxSetting, MetaTestResult, held_out_seed
from rllib_marl_meta.tasks import TaskAPIError, draw_tasks, require_task_env

META_GRADIENTS = ("second_order", "first_order")
INNER_LOSSES = tuple(maml_torch_learner.INNER_LOSSES)
BASELINES = ("linear", "value", "central_value")
TASK_RNG_KEY = "maml_task_rng_state"
# MAML's training settings recommended for teams of agents (`MAMLConfig.team_training()`).
# Measured by `bench/maml_team_defaults.py` (README, "one setting for every team task"): with one
# module per agent, 150k env steps and no per-task tuning, a significant team gain from one inner
# step on 3 of the 4 built-in multi-agent distributions, the largest of the settings tried on
# each, at about a third of the class defaults' wall time.
TEAM_TRAINING = {
    # 10 tasks x 10 episodes per iteration: an eighth of the class defaults' (ProMP's 40 x 20),
    # so eight times as many meta-updates for the same env steps.
    "meta_batch_size": 10,
    "episodes_per_task": 10,
    # The inner step CooperativeNavigation was tuned with, kept for every team task.
    "inner_lr": 0.3,
    # Outer Adam step (class default 1e-3), raised with the smaller batches.
    "lr": 3e-3,
}


class MAMLConfig(CheckedSettingsMixin, AlgorithmConfig):
    """Configuration of :class:`MAML`. Defaults follow ProMP and old RLlib MAML.

    Example::

        config = (
            MAMLConfig()
            .environment("PointNavigation2D")
            .env_runners(num_env_runners=2)
            .training(meta_batch_size=20, episodes_per_task=10, inner_adaptation_steps=1)
        )
        algo = config.build_algo()
        print(algo.train()["adaptation_delta"])

    Every setting in ``SETTINGS`` is range-checked where it is set (``training()``, attribute
    assignment, ``update_from_dict``) and again in ``validate()``.
    """

    SETTINGS = COMMON_SETTINGS | {
        "inner_adaptation_steps": integer(1),
        "inner_lr": number(0.0, low_open=True),
        "maml_optimizer_steps": integer(1),
        "meta_batch_size": integer(1),
        "episodes_per_task": integer(1, optional=True),
        "env_steps_per_task": integer(1, optional=True),
        "meta_gradient": one_of(*META_GRADIENTS),
        "inner_loss": one_of(*INNER_LOSSES),
        "baseline": one_of(*BASELINES),
        "modules_to_adapt": module_id_list(),
        "clip_param": number(0.0, low_open=True),
        "kl_coeff": number(0.0),
        "kl_target": number(0.0, low_open=True),
        "vf_loss_coeff": number(0.0),
        "entropy_coeff": number(0.0),
        "lambda_": number(0.0, 1.0),
        "use_gae": boolean(),
        "max_task_resamples": integer(0),
        "framework_str": torch_only("MAML"),
    }

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or MAML)
        # Outer (meta) optimizer: Adam via RLlib's default optimizer config.
        self.lr = 1e-3
        self.num_env_runners = 0
        self.batch_mode = "complete_episodes"
        # MAML settings.
        self.inner_adaptation_steps = 1
        self.inner_lr = 0.1
        self.maml_optimizer_steps = 5
        self.meta_batch_size = 40
        self.episodes_per_task = 20
        self.env_steps_per_task = None
        self.meta_gradient = "second_order"
        self.inner_loss = "pg"
        self.baseline = "linear"
        self.modules_to_adapt = None
        # PPO-style outer objective.
        self.clip_param = 0.3
        self.kl_coeff = 5e-4
        self.kl_target = 0.01
        self.vf_loss_coeff = 0.5
        self.entropy_coeff = 0.0
        self.lambda_ = 1.0
        self.gamma = 0.99
        self.use_gae = True
        # Fault tolerance: re-dispatch the tasks of a failed EnvRunner at most this often.
        self.max_task_resamples = 3

    @override(AlgorithmConfig)
    def training(
        self,
        *,
        inner_adaptation_steps: int | None = NotProvided,
        inner_lr: float | None = NotProvided,
        maml_optimizer_steps: int | None = NotProvided,
        meta_batch_size: int | None = NotProvided,
        episodes_per_task: int | None = NotProvided,
        env_steps_per_task: int | None = NotProvided,
        meta_gradient: str | None = NotProvided,
        inner_loss: str | None = NotProvided,
        baseline: str | None = NotProvided,
        modules_to_adapt: list[str] | None = NotProvided,
        clip_param: float | None = NotProvided,
        kl_coeff: float | None = NotProvided,
        kl_target: float | None = NotProvided,
        vf_loss_coeff: float | None = NotProvided,
        entropy_coeff: float | None = NotProvided,
        lambda_: float | None = NotProvided,
        use_gae: bool | None = NotProvided,
        max_task_resamples: int | None = NotProvided,
        **kwargs: Any,
    ) -> MAMLConfig:
        """Sets MAML's training settings.

        Args:
            inner_adaptation_steps: K, inner gradient steps per task (>= 1). Each step samples
                fresh episodes with the adapted parameters.
            inner_lr: step size of the inner (adaptation) update.
            maml_optimizer_steps: outer optimizer steps per iteration on the same data.
            meta_batch_size: tasks per iteration; independent of the number of EnvRunners.
            episodes_per_task: episodes per task and adaptation step.
            env_steps_per_task: alternatively, at least this many env steps (whole episodes)
                per task and step; set ``episodes_per_task=None`` to use it.
            meta_gradient: ``"second_order"`` differentiates through the inner gradient;
                ``"first_order"`` (FOMAML) treats it as a constant.
            inner_loss: inner-loss estimator, a key of ``maml_torch_learner.INNER_LOSSES``:
                ``"pg"`` (likelihood-ratio policy gradient), ``"lvc"`` (ProMP's low-variance
                curvature estimator) or ``"dice"`` (DiCE: all score-function terms of the Hessian
                that ``"second_order"`` uses). All give the same gradient at the sampling policy.
            baseline: ``"linear"`` (feature baseline refit per task and step, no value head
                needed), ``"value"`` (the module's value head, trained in the outer loop
                with ``vf_loss_coeff``) or, multi-agent only, ``"central_value"`` (one critic
                on all agents' observations, trained in the outer loop; the agents still act
                on their own observations; see ``torch/central_value.py``).
            modules_to_adapt: module IDs adapted in the inner loop; the others stay at their
                meta-parameters (None: all trainable modules).
            clip_param: PPO clip range of the outer surrogate.
            kl_coeff: initial coefficient of the outer KL penalty (adapted towards
                ``kl_target``).
            kl_target: target KL between sampling and adapted policy.
            vf_loss_coeff: weight of the value loss (``baseline="value"`` or
                ``"central_value"``).
            entropy_coeff: weight of the outer entropy bonus.
            lambda_: GAE lambda.
            use_gae: use GAE (else plain discounted returns minus baseline).
            max_task_resamples: how often a task whose EnvRunner failed is re-dispatched.
        """
        super().training(**kwargs)
        for name, value in dict(
            inner_adaptation_steps=inner_adaptation_steps,
            inner_lr=inner_lr,
            maml_optimizer_steps=maml_optimizer_steps,
            meta_batch_size=meta_batch_size,
            episodes_per_task=episodes_per_task,
            env_steps_per_task=env_steps_per_task,
            meta_gradient=meta_gradient,
            inner_loss=inner_loss,
            baseline=baseline,
            modules_to_adapt=modules_to_adapt,
            clip_param=clip_param,
            kl_coeff=kl_coeff,
            kl_target=kl_target,
            vf_loss_coeff=vf_loss_coeff,
            entropy_coeff=entropy_coeff,
            lambda_=lambda_,
            use_gae=use_gae,
            max_task_resamples=max_task_resamples,
        ).items():
            if value is not NotProvided:
                setattr(self, name, value)
        return self

    def team_training(self) -> MAMLConfig:
        """Applies ``TEAM_TRAINING``, the settings recommended for multi-agent (team) tasks.

        The class defaults follow ProMP's single-agent settings. On the built-in team
        distributions these gave a significant team gain on three of four, the class defaults a
        smaller one on two (see ``TEAM_TRAINING``). Settings given to ``training()`` afterwards
        override them.
        """
        return self.training(**TEAM_TRAINING)

    @override(AlgorithmConfig)
    def get_default_rl_module_spec(self) -> RLModuleSpec:
        # PPO's default module: policy and value heads, for discrete and continuous actions.
        return PPOConfig.get_default_rl_module_spec(self)

    @override(AlgorithmConfig)
    def get_default_learner_class(self):
        from rllib_marl_meta.algorithms.maml.torch.maml_torch_learner import MAMLTorchLearner

        return MAMLTorchLearner

    @property
    @override(AlgorithmConfig)
    def _model_config_auto_includes(self) -> dict[str, Any]:
        # ProMP's network: two tanh layers of 64; separate value network.
        return super()._model_config_auto_includes | {
            "fcnet_hiddens": [64, 64],
            "fcnet_activation": "tanh",
            "vf_share_layers": False,
        }

    @override(AlgorithmConfig)
    def get_multi_rl_module_spec(self, *, env=None, spaces=None, inference_only=False, **kwargs):
        spec = super().get_multi_rl_module_spec(
            env=env, spaces=spaces, inference_only=inference_only, **kwargs
        )
        # The central critic is learner-only (RLlib drops such specs for EnvRunners, which
        # only act; it does so before this addition, hence the check).
        if self.baseline == "central_value" and not inference_only:
            spec.rl_module_specs[CENTRAL_VALUE_MODULE_ID] = central_value_spec(
                spaces, self.model_config
            )
        return spec

    @override(AlgorithmConfig)
    def build_learner_connector(self, input_observation_space, input_action_space, device=None):
        pipeline = super().build_learner_connector(
            input_observation_space=input_observation_space,
            input_action_space=input_action_space,
            device=device,
        )
        # Advantages need the batched, tensorised columns, like RLlib's GAE piece.
        pipeline.append(
            MetaAdvantages(
                baseline=self.baseline,
                gamma=self.gamma,
                lambda_=self.lambda_,
                use_gae=self.use_gae,
            )
        )
        return pipeline

    @override(AlgorithmConfig)
    def build_module_to_env_connector(self, env=None, spaces=None):
        pipeline = super().build_module_to_env_connector(env=env, spaces=spaces)
        # Unsquash/clip the batched actions in one call (RLlib's default piece works item by
        # item, a quarter of the EnvRunner's time with many sub-envs).
        use_batched_action_transform(
            pipeline, self.normalize_actions, self.clip_actions, self.is_multi_agent
        )
        return pipeline

    @override(AlgorithmConfig)
    def validate(self) -> None:
        errors = self.check_settings()
        if errors:  # Before RLlib's own checks (e.g. its "install tensorflow").
            raise ValueError("Invalid MAMLConfig:\n  - " + "\n  - ".join(errors))
        super().validate()
        if (self.episodes_per_task is None) == (self.env_steps_per_task is None):
            errors.append(
                "Set exactly one of `episodes_per_task` and `env_steps_per_task` "
                f"(got {self.episodes_per_task!r} and {self.env_steps_per_task!r})."
            )
        errors += self._module_id_errors()
        if self.batch_mode != "complete_episodes":
            errors.append(
                f"MAML adapts on whole episodes per task, but `batch_mode` is "
                f"{self.batch_mode!r}; use `config.env_runners(batch_mode='complete_episodes')`."
            )
        if self.model_config.get("use_lstm"):
            errors.append("MAML supports feed-forward modules only; remove `use_lstm=True`.")
        if self.baseline == "central_value" and not self.is_multi_agent:
            errors.append(
                "baseline='central_value' is a critic over all agents' observations, for "
                "multi-agent envs; with one agent use baseline='value'."
            )
        if errors:
            raise ValueError("Invalid MAMLConfig:\n  - " + "\n  - ".join(errors))
        # A runner samples a whole plan of task episodes per call (see `env_runner.py`).
        planned = (MAMLEnvRunner, MultiAgentMAMLEnvRunner)
        if self.env_runner_cls is None or self.env_runner_cls in planned:
            self.env_runner_cls = planned[self.is_multi_agent]
        if self.env is not None:
            register_class_path_env(self.env)
            self._validate_task_api()

    def module_ids(self) -> set[str]:
        """The IDs of the RLModules this config builds."""
        if isinstance(self._rl_module_spec, MultiRLModuleSpec) and isinstance(
            self._rl_module_spec.rl_module_specs, dict
        ):
            return set(self._rl_module_spec.rl_module_specs)
        if self.is_multi_agent:
            return set(self.policies)
        return {DEFAULT_MODULE_ID}

    def _module_id_errors(self) -> list[str]:
        """``modules_to_adapt`` must name modules that exist and are trained."""
        wanted = self.modules_to_adapt
        if wanted is None or not isinstance(wanted, (list, tuple, set, frozenset)):
            return []
        known = self.module_ids()
        errors = []
        unknown = sorted(set(wanted) - known)
        if unknown:
            errors.append(
                f"`modules_to_adapt` names modules {unknown} that do not exist; the modules are "
                f"{sorted(known)}. Without them, no module would adapt in the inner loop."
            )
        elif not wanted:
            errors.append(
                "`modules_to_adapt` is empty, so no module would adapt in the inner loop; use "
                "None to adapt every trained module."
            )
        trained = self.policies_to_train
        if isinstance(trained, (list, tuple, set, frozenset)):
            frozen = sorted(set(wanted) & known - set(trained))
            if frozen:
                errors.append(
                    f"`modules_to_adapt` names modules {frozen} that are not in "
                    f"`policies_to_train` {sorted(trained)}; only trained modules adapt."
                )
        return errors

    def _validate_task_api(self) -> None:
        """Fails early, on the driver, on an env without the task API or with bad output."""
        env = make_driver_env(self)
        try:
            try:
                require_task_env(env)
            except TaskAPIError as e:
                raise ValueError(f"MAML needs an env with the task API. {e}") from None
            check_multi_agent_setup(self, env, "MAML")
            probe_env(env, "MAML")
            if self.baseline == "central_value":
                agents = agent_ids(env) or []
                global_state_space({a: env.get_observation_space(a) for a in agents})
        finally:
            close_env(env)


class MAML(CheckedCheckpointMixin, Algorithm):
    """Model-Agnostic Meta-Learning on RLlib's new API stack; see the module docstring."""

    @classmethod
    @override(Algorithm)
    def get_default_config(cls) -> MAMLConfig:
        return MAMLConfig()

    @override(Algorithm)
    def setup(self, config: AlgorithmConfig) -> None:
        super().setup(config)
        self._task_env = require_task_env(make_driver_env(self.config))
        self._task_rng = np.random.default_rng(self.config.seed)

    @override(Algorithm)
    def training_step(self) -> None:
        cfg = self.config
        task_seed = int(self._task_rng.integers(2**31 - 1))
        tasks = draw_tasks(self._task_env, cfg.meta_batch_size, seed=task_seed)
        iteration_seed = (cfg.seed or 0) * 1_000_003 + self.iteration * 7919
        step_episodes = self._sample_and_adapt(tasks, cfg.inner_adaptation_steps, iteration_seed)

        num_learners = self._num_learners()
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self._call_learners(
                lambda learner, rank, n: learner.meta_update(
                    _tasks_of_rank(n, rank, len(tasks)), len(tasks)
                ),
                num_learners,
            )
            self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group, inference_only=True
            )
        self._log_adaptation_metrics(step_episodes)

    def meta_test(
        self, num_tasks: int = 20, seed: int = 0, steps: int | None = None
    ) -> MetaTestResult:
        """Adapts to ``num_tasks`` new tasks and reports returns before and after each step.

        Tasks come from the distribution's test split, drawn with ``held_out_seed(seed)`` (a
        stream apart from training's); ``steps`` inner steps (default:
        ``inner_adaptation_steps``). No meta-update happens: the meta-parameters are unchanged
        afterwards.

        Returns:
            The curve ``"pre", "adapt_1", ..., "adapt_{steps}"``; each task's value is the
            mean return of its episodes at that point; per module and agent in ``groups``.
        """
        steps = self.config.inner_adaptation_steps if steps is None else steps
        for name, value, setting in (
            ("num_tasks", num_tasks, integer(1)),
            ("seed", seed, integer(0)),
            ("steps", steps, integer(1)),
        ):
            if not setting.check(value):
                raise ValueError(
                    f"MAML.meta_test: `{name}` must be {setting.allowed}; got {value!r}."
                )
        tasks = draw_tasks(self._task_env, num_tasks, seed=held_out_seed(seed), split="test")
        try:
            step_episodes = self._sample_and_adapt(
                tasks, steps, 7_777_777 + seed * 7919, log_metrics=False
            )
        finally:
            self._call_learners(
                lambda learner, rank, n: learner.clear_tasks(), self._num_learners()
            )
        groups: dict[str, dict[str, list]] = {}
        for step in step_episodes:
            for group, values in _group_returns(step).items():
                for name, task_means in values.items():
                    groups.setdefault(group, {}).setdefault(name, []).append(task_means)
        success = [[_success_rate(step[i]) for i in sorted(step)] for step in step_episodes]
        return MetaTestResult(
            algorithm="MAML",
            env=env_display_name(self.config.env),
            num_tasks=num_tasks,
            seed=seed,
            labels=["pre"] + [f"adapt_{k}" for k in range(1, steps + 1)],
            returns=[[_mean_return(step[i]) for i in sorted(step)] for step in step_episodes],
            groups=groups,
            tasks=tasks,
            success=[] if None in success[0] else success,
        )

    @classmethod
    def progress_columns(cls, max_setting: MaxSetting) -> dict[str, str]:
        """Pre-adaptation return, the return after each inner step, and the gain with its
        95% interval."""
        columns = {"episode_return_mean": "pre-adapt return"}
        for k in range(1, max_setting("inner_adaptation_steps", 1) + 1):
            columns[f"episode_return_mean_adapt_{k}"] = f"adapt {k} return"
        columns["adaptation_delta"] = "adaptation_delta"
        columns["adaptation_delta_ci95"] = "±95%"
        return columns

    def _num_learners(self) -> int:
        return max(1, len(self.learner_group._workers or [None]))

    def _sample_and_adapt(
        self, tasks: list, num_steps: int, seed: int, log_metrics: bool = True
    ) -> list[dict[int, list]]:
        """Samples ``D_0`` with theta, then ``D_k`` with each task's step-k adapted weights.

        The Learners keep every task's batches for a following ``meta_update``.
        """
        num_learners = self._num_learners()
        theta = self._call_learners(lambda learner, rank, n: learner.meta_weights(), 1)[0]
        weights_per_task = {i: theta for i in range(len(tasks))}
        step_episodes: list[dict[int, list]] = []
        sampling_seconds = 0.0
        for step in range(num_steps + 1):
            jobs = [
                TaskJob(i, tasks[i], weights_per_task[i], seed + 104729 * step + i)
                for i in range(len(tasks))
            ]
            start = time.perf_counter()
            episodes_per_task, runner_metrics = sample_task_episodes(self, jobs, step)
            sampling_seconds += time.perf_counter() - start
            if log_metrics:  # Meta-testing must not count towards training's env steps.
                self.metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
            step_episodes.append(episodes_per_task)
            with self.metrics.log_time((TIMERS, "learner_adaptation_timer")):
                self._add_episodes(episodes_per_task, step, num_learners)
                if step < num_steps:
                    weights_per_task = self._adapt(len(tasks), num_learners)
        if log_metrics:  # One value per iteration (all K + 1 rounds), like PPO's timer.
            self.metrics.log_value((TIMERS, ENV_RUNNER_SAMPLING_TIMER), sampling_seconds)
        return step_episodes

    # --- Learner calls --------------------------------------------------------------------

    def _call_learners(self, func, num_learners: int, payloads: dict | None = None) -> list:
        """Calls ``func(learner, rank, num_learners[, payload])`` on every Learner."""
        refs = {r: ray.put(p) for r, p in (payloads or {}).items()} if num_learners > 1 else None

        def run(learner):
            rank = _learner_rank()
            if payloads is None:
                return func(learner, rank, num_learners)
            payload = ray.get(refs[rank]) if refs is not None else payloads[rank]
            return func(learner, rank, num_learners, payload)

        results = self.learner_group.foreach_learner(run)
        out = []
        for result in results:
            if not result.ok:
                raise result.get()
            out.append(result.get())
        return out

    def _add_episodes(self, episodes_per_task: dict[int, list], step: int, n: int) -> None:
        payloads = {
            rank: {i: episodes_per_task[i] for i in _tasks_of_rank(n, rank, len(episodes_per_task))}
            for rank in range(n)
        }
        self._call_learners(
            lambda learner, rank, n, mine: [
                learner.add_task_episodes(i, step, eps) for i, eps in mine.items()
            ],
            n,
            payloads,
        )

    def _adapt(self, num_tasks: int, n: int) -> dict[int, dict]:
        weights: dict[int, dict] = {}
        for part in self._call_learners(
            lambda learner, rank, n: learner.adapt(_tasks_of_rank(n, rank, num_tasks)), n
        ):
            weights.update(part)
        return weights

    # --- Metrics --------------------------------------------------------------------------

    def _log_adaptation_metrics(self, step_episodes: list[dict[int, list]]) -> None:
        """Pre-/post-adaptation returns: per task means first, then mean over tasks."""
        per_step_task_means = [
            np.array([_mean_return(step[i]) for i in sorted(step)]) for step in step_episodes
        ]
        for k, task_means in enumerate(per_step_task_means):
            key = "episode_return_mean" if k == 0 else f"episode_return_mean_adapt_{k}"
            self.metrics.log_value(key, float(task_means.mean()), window=1)
        self.metrics.log_value(
            "num_episodes_per_task",
            float(np.mean([len(eps) for step in step_episodes for eps in step.values()])),
            window=1,
        )
        deltas = per_step_task_means[-1] - per_step_task_means[0]
        self.metrics.log_value("adaptation_delta", float(deltas.mean()), window=1)
        stderr = float(deltas.std(ddof=1) / math.sqrt(len(deltas))) if len(deltas) > 1 else 0.0
        self.metrics.log_value("adaptation_delta_ci95", 1.96 * stderr, window=1)
        for k, step in enumerate(step_episodes):  # Envs with a success flag (Meta-World).
            rates = [_success_rate(step[i]) for i in sorted(step)]
            if None not in rates:
                key = "success_rate" if k == 0 else f"success_rate_adapt_{k}"
                self.metrics.log_value(key, float(np.mean(rates)), window=1)
        # Multi-agent: the same per module and per agent.
        for k, step in enumerate(step_episodes):
            suffix = "" if k == 0 else f"_adapt_{k}"
            for group, values in _group_returns(step).items():
                for name, task_means in values.items():
                    self.metrics.log_value(
                        (f"{group}_episode_return_mean{suffix}", name),
                        float(np.mean(task_means)),
                        window=1,
                    )

    # --- Checkpointing --------------------------------------------------------------------

    @override(Algorithm)
    def get_state(self, *args, **kwargs) -> dict[str, Any]:
        state = super().get_state(*args, **kwargs)
        state[TASK_RNG_KEY] = self._task_rng.bit_generator.state
        return state

    @override(Algorithm)
    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if TASK_RNG_KEY in state:
            self._task_rng.bit_generator.state = state[TASK_RNG_KEY]


def _learner_rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _tasks_of_rank(num_learners: int, rank: int, num_tasks: int) -> list[int]:
    """Task indices a Learner owns: round-robin by rank."""
    return list(range(rank, num_tasks, num_learners))


def _mean_return(episodes: list) -> float:
    return float(np.mean([e.get_return() for e in episodes]))


def _success_rate(episodes: list) -> float | None:
    """The fraction of ``episodes`` whose env set ``info["success"]`` at any step; None when
    the env reports no such flag (or the episodes are multi-agent)."""
    flags = []
    for episode in episodes:
        if isinstance(episode, MultiAgentEpisode):
            return None
        values = [
            i["success"] for i in episode.get_infos() if isinstance(i, dict) and "success" in i
        ]
        if not values:
            return None
        flags.append(max(values) > 0)
    return float(np.mean(flags)) if flags else None


def _group_returns(step: dict[int, list]) -> dict[str, dict[str, list[float]]]:
    """Per-task mean returns per module ("module") and per agent ("agent")."""
    out: dict[str, dict[str, list[float]]] = {"module": {}, "agent": {}}
    for i in sorted(step):
        if not step[i] or not isinstance(step[i][0], MultiAgentEpisode):
            return {}
        per_module: dict[str, list[float]] = {}
        per_agent: dict[str, list[float]] = {}
        for episode in step[i]:
            module_sums: dict[str, float] = {}
            for agent_id, sa_episode in episode.agent_episodes.items():
                ret = float(sa_episode.get_return())
                per_agent.setdefault(str(agent_id), []).append(ret)
                mid = str(episode.module_for(agent_id))
                module_sums[mid] = module_sums.get(mid, 0.0) + ret
            for mid, ret in module_sums.items():
                per_module.setdefault(mid, []).append(ret)
        for name, rets in per_module.items():
            out["module"].setdefault(name, []).append(float(np.mean(rets)))
        for name, rets in per_agent.items():
            out["agent"].setdefault(name, []).append(float(np.mean(rets)))
    return out

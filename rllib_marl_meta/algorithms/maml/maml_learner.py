"""The framework-agnostic part of MAML's Learner: task data, KL coefficients, bookkeeping.

A Learner keeps, for each task it owns in the current iteration, the batches of every
adaptation step (built once by the learner connector, reused by the meta-update) and the task's
latest adapted parameters. Several Learners split the tasks of a meta-batch by rank.
"""

from __future__ import annotations

import abc
from typing import Any

from ray.rllib.core.learner.learner import Learner
from ray.rllib.utils.metrics import ALL_MODULES
from ray.rllib.utils.typing import ModuleID

from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES
from rllib_marl_meta.algorithms.maml.torch.central_value import CENTRAL_VALUE_MODULE_ID

KL_COEFF_KEY = "curr_kl_coeff"
INNER_LOSS_KEY = "inner_loss"
OUTER_LOSS_KEY = "outer_loss"
VALUE_LOSS_KEY = "value_loss"  # vf_loss_coeff x the value regression, mean over this rank's tasks.


class MAMLLearner(Learner, abc.ABC):
    """Holds per-task batches and adapted parameters; implements the iteration's protocol.

    The driver calls, per iteration: ``add_task_episodes`` for each (task, step) and, between
    steps, ``adapt`` (returns the adapted weights the EnvRunners sample with); finally
    ``meta_update``, which also clears the task data.
    """

    def build(self) -> None:
        super().build()
        self.curr_kl_coeffs_per_module: dict[ModuleID, float] = {
            mid: float(self.config.kl_coeff) for mid in self.module.keys()
        }
        self._task_batches: dict[int, list[Any]] = {}
        self._adapted_params: dict[int, Any] = {}
        wanted = self.config.modules_to_adapt
        if wanted is not None and not self._adapt_module_ids():
            # `MAMLConfig.validate()` checks this for the modules it knows; a custom
            # MultiRLModuleSpec can still build other ones.
            raise ValueError(
                f"`modules_to_adapt` {sorted(wanted)} names none of the trained modules "
                f"{sorted(m for m in self.module.keys() if self.should_module_be_updated(m))}: "
                "no module would adapt in the inner loop."
            )

    # --- Protocol called by the MAML algorithm ------------------------------------------------

    def add_task_episodes(self, task_id: int, step: int, episodes: list) -> None:
        """Turns one task's step-``step`` episodes into a batch with RLlib's learner connector."""
        batches = self._task_batches.setdefault(task_id, [])
        if step != len(batches):
            raise RuntimeError(
                f"Task {task_id}: got episodes of step {step}, expected step {len(batches)}."
            )
        batch = self._learner_connector(
            rl_module=self.module,
            batch={},
            episodes=episodes,
            shared_data={},
            metrics=self.metrics,
        )
        for module_id, module_batch in batch.items():
            advantages = module_batch.get(ADVANTAGES)
            if advantages is not None and not self._all_finite(advantages):
                raise FloatingPointError(
                    f"MAML: non-finite advantages for task {task_id}, adaptation step {step}, "
                    f"module {module_id!r}, although the episodes' rewards and observations are "
                    "finite. Check the value baseline (`baseline='linear'` needs no value head) "
                    "and the reward scale."
                )
        batches.append(batch)

    def adapt(self, task_ids: list[int]) -> dict[int, dict[ModuleID, dict[str, Any]]]:
        """One inner step per task on its latest batch; returns EnvRunner (inference) weights."""
        weights = {}
        if not task_ids:
            return weights
        adapted = self._adapt_tasks(
            [self._adapted_params.get(task_id) for task_id in task_ids],
            [self._task_batches[task_id][-1] for task_id in task_ids],
        )
        for task_id, params in zip(task_ids, adapted, strict=True):
            bad = self._non_finite_names(params)
            if bad:
                raise FloatingPointError(
                    f"MAML: the inner update of task {task_id} (step "
                    f"{len(self._task_batches[task_id])}) made parameters {bad[:3]} non-finite. "
                    f"Lower `inner_lr` (now {self.config.inner_lr}) or scale the rewards."
                )
            self._adapted_params[task_id] = params
            weights[task_id] = self._inference_weights(params)
        return weights

    def meta_weights(self) -> dict[ModuleID, dict[str, Any]]:
        """The meta-parameters as EnvRunner (inference-only) module states."""
        return self._inference_weights(self._meta_parameters())

    def meta_update(self, task_ids: list[int], num_tasks_total: int) -> dict[str, Any]:
        """``maml_optimizer_steps`` meta-gradient steps, then the adaptive-KL update."""
        stats = {}
        step_batches = self._stack_steps(task_ids)  # Once: every optimizer step reuses them.
        for _ in range(self.config.maml_optimizer_steps):
            stats = self._meta_gradient_step(task_ids, step_batches, num_tasks_total)
        for mid, module_stats in stats.items():
            self._update_kl_coeff(mid, module_stats["kl"])
            for key, value in module_stats.items():
                self.metrics.log_value((mid, key), value, window=1)
            self.metrics.log_value(
                (mid, KL_COEFF_KEY), self.curr_kl_coeffs_per_module[mid], window=1
            )
        self._task_batches.clear()
        self._adapted_params.clear()
        return self.metrics.reduce()

    def clear_tasks(self) -> None:
        self._task_batches.clear()
        self._adapted_params.clear()

    def compute_loss_for_module(self, *, module_id, config, batch, fwd_out):
        """Not used: MAML's loss needs per-task batches, see ``meta_update``."""
        raise NotImplementedError(
            "MAMLLearner has no per-batch loss; the MAML algorithm calls `meta_update`."
        )

    def should_module_be_updated(self, module_id, multi_agent_batch=None) -> bool:
        """RLlib's rule (``policies_to_train``), except that the central critic always trains."""
        if module_id == CENTRAL_VALUE_MODULE_ID:
            return True
        return super().should_module_be_updated(module_id, multi_agent_batch)

    # --- Helpers ------------------------------------------------------------------------------

    def _adapt_module_ids(self) -> list[ModuleID]:
        """The policy modules the inner loop adapts (never the central critic)."""
        wanted = self.config.modules_to_adapt
        return [
            mid
            for mid in self.module.keys()
            if mid != CENTRAL_VALUE_MODULE_ID
            and self.should_module_be_updated(mid)
            and (wanted is None or mid in wanted)
        ]

    def _update_kl_coeff(self, module_id: ModuleID, kl: float) -> None:
        """ProMP / old RLlib rule: halve below target/1.5, double above 1.5*target."""
        target = self.config.kl_target
        if kl < target / 1.5:
            self.curr_kl_coeffs_per_module[module_id] *= 0.5
        elif kl > target * 1.5:
            self.curr_kl_coeffs_per_module[module_id] *= 2.0

    def _log_inner_loss(self, value: float) -> None:
        self.metrics.log_value((ALL_MODULES, INNER_LOSS_KEY), value, window=1)

    def _log_outer_loss(self, value: float) -> None:
        self.metrics.log_value((ALL_MODULES, OUTER_LOSS_KEY), value, window=1)

    def _log_value_loss(self, value: float) -> None:
        self.metrics.log_value((ALL_MODULES, VALUE_LOSS_KEY), value, window=1)

    def get_state(self, components=None, *, not_components=None, **kwargs) -> dict[str, Any]:
        state = super().get_state(components, not_components=not_components, **kwargs)
        state[KL_COEFF_KEY] = dict(self.curr_kl_coeffs_per_module)
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if KL_COEFF_KEY in state:
            self.curr_kl_coeffs_per_module.update(state[KL_COEFF_KEY])

    # --- Framework-specific parts -------------------------------------------------------------

    @abc.abstractmethod
    def _all_finite(self, values: Any) -> bool:
        """Whether a tensor holds no NaN or infinity."""

    @abc.abstractmethod
    def _non_finite_names(self, params: Any) -> list[str]:
        """``module/param`` names of the parameters in ``params`` that hold NaN or infinity."""

    @abc.abstractmethod
    def _meta_parameters(self) -> Any:
        """The trainable meta-parameters, per module."""

    @abc.abstractmethod
    def _adapt_tasks(self, params: list[Any | None], batches: list[Any]) -> list[Any]:
        """One inner update per task, all tasks at once: task ``i`` steps from ``params[i]``
        (``None`` means the meta-parameters) on ``batches[i]``."""

    @abc.abstractmethod
    def _inference_weights(self, params: Any) -> dict[ModuleID, dict[str, Any]]:
        """``params`` as EnvRunner module states (numpy, inference-only keys)."""

    @abc.abstractmethod
    def _stack_steps(self, task_ids: list[int]) -> list[Any]:
        """The tasks' batches of each adaptation step, in the meta-update's batched form."""

    @abc.abstractmethod
    def _meta_gradient_step(
        self, task_ids: list[int], step_batches: list[Any], num_tasks_total: int
    ) -> dict:
        """One optimizer step on the mean outer loss; returns per-module mean stats."""

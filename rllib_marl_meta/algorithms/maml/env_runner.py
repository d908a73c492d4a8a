"""MAML's EnvRunners: many tasks at once, a task per sub-env, each with its own weights.

MAML needs each task's own episodes, sampled with that task's own (adapted) weights. Sampling
the tasks one after the other with all sub-envs on one task either wastes the sub-envs (many
tasks, few episodes each) or throws away the extra episodes they finish. These runners take a
runner's whole share of a meta-batch as one episode plan (:mod:`..plan_sampling`:
``episodes_per_task`` episodes per task, nothing discarded, idle steps uncounted) and

- act on each row with the weights of that row's task: the tasks' parameters are stacked once
  per call and evaluated per row with ``torch.func.vmap`` over ``torch.func.functional_call``,
  or per group of rows when a batch holds few tasks;
- draw each row's exploration noise from its episode's own generator (one per agent in a
  multi-agent episode), so an episode depends neither on the runner or sub-env that ran it nor
  on the other tasks that shared the batch.

:class:`MAMLEnvRunner` is the single-agent runner, :class:`MultiAgentMAMLEnvRunner` the
multi-agent one. Used when ``episodes_per_task`` is set; ``env_steps_per_task`` samples the
tasks one after the other (``sampling.py``).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np
import torch
import tree
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.env.multi_agent_env_runner import MultiAgentEnvRunner
from ray.rllib.env.single_agent_env_runner import SingleAgentEnvRunner

from rllib_marl_meta.algorithms.plan_sampling import (
    EpisodePlan,
    MultiAgentPlanMixin,
    SingleAgentPlanMixin,
    sample_actions,
)

# Up to this many distinct tasks in one batch are evaluated per group of rows, more by vmap
# (for modules whose task weights are not all in Linear layers, see `_RowWeights`).
MAX_GROUPS = 2
# Off: never use row-wise Linear layers (tests compare the three ways of evaluating rows).
ROW_WISE_LINEARS = True


class _Exploration(torch.nn.Module):
    """An RLModule's exploration forward as ``forward``, for ``torch.func.functional_call``."""

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, batch: dict) -> dict:
        # RLlib's override point, without `forward_exploration`'s switch to eval mode and back
        # (a tenth of a runner's step): the plan puts the module in eval mode once.
        return type(self.module)._forward_exploration(self.module, batch)


class _RowWeights:
    """One RLModule's weights per task, and the forward of rows that belong to many tasks."""

    def __init__(self, module: torch.nn.Module, task_weights: list[dict] | None) -> None:
        """``task_weights`` None: the module keeps its own weights (it is not meta-trained)."""
        self.module = module
        self.shared = task_weights is None or all(w is task_weights[0] for w in task_weights)
        self.dist_cls = module.get_exploration_action_dist_cls()
        if self.shared:  # One set of weights (theta, before adaptation): a plain forward.
            if task_weights is not None:
                module.set_state(task_weights[0])
            return
        device = next(module.parameters()).device
        self.wrapper = _Exploration(module)
        self.stacked = {
            f"module.{name}": torch.as_tensor(
                np.stack([np.asarray(w[name]) for w in task_weights]), device=device
            )
            for name, _ in module.named_parameters()
            if name in task_weights[0]  # Others (e.g. a critic on a full module) stay as is.
        }
        self._layout: tuple[Any, Any] | None = None
        # Linear layers whose weights differ per task. If the task weights are exactly theirs
        # (RLlib's default MLP encoders and heads), rows with different tasks go through the
        # module's own forward with each such layer computing a row-wise product: less than
        # half the cost of a vmapped `functional_call` with 10 rows. Else vmap or row groups.
        self.linears = {
            name: layer
            for name, layer in module.named_modules()
            if isinstance(layer, torch.nn.Linear) and f"module.{name}.weight" in self.stacked
        }
        linear_params = {
            f"module.{name}.{p}"
            for name, layer in self.linears.items()
            for p, _ in layer.named_parameters()
        }
        self.row_linears = bool(self.linears) and linear_params == set(self.stacked)
        self._forwards: tuple[Any, list] = (None, [])

    def inputs(self, batch: dict, row_tasks: np.ndarray, key: Any) -> torch.Tensor:
        """Action-distribution inputs of each row with its task's weights.

        A forward per group of rows costs about half a vmapped forward over 10 to 20 rows
        (measured with a (64, 64) MLP), so up to ``MAX_GROUPS`` tasks in a batch go by groups.
        The layout is rebuilt only when ``key`` (which rows hold which task) changes.
        """
        if self.shared:
            return type(self.module)._forward_exploration(self.module, batch)[
                Columns.ACTION_DIST_INPUTS
            ]
        obs = batch.get(Columns.OBS)
        by_row_linears = (
            ROW_WISE_LINEARS
            and self.row_linears
            and isinstance(obs, torch.Tensor)
            and obs.dim() == 2
        )
        if self._layout is None or self._layout[0] != key:
            positions = np.unique(row_tasks)
            if not by_row_linears and (len(positions) <= MAX_GROUPS or set(batch) != {Columns.OBS}):
                layout: Any = [
                    (
                        torch.as_tensor(np.flatnonzero(row_tasks == position)),
                        {name: stack[position] for name, stack in self.stacked.items()},
                    )
                    for position in positions
                ]
            else:
                rows = torch.as_tensor(row_tasks)
                layout = {name: stack[rows] for name, stack in self.stacked.items()}
            self._layout = (key, layout)
        layout = self._layout[1]
        if isinstance(layout, dict) and by_row_linears:
            if self._layout[0] != self._forwards[0]:
                self._forwards = (self._layout[0], _row_wise_forwards(self.linears, layout))
            with _row_wise(self._forwards[1]):
                out = type(self.module)._forward_exploration(self.module, batch)
            return out[Columns.ACTION_DIST_INPUTS]
        if isinstance(layout, dict):

            def one_row(row_params, obs):
                out = torch.func.functional_call(
                    self.wrapper, row_params, ({Columns.OBS: tree.map_structure(_one, obs)},)
                )
                return out[Columns.ACTION_DIST_INPUTS][0]

            return torch.func.vmap(one_row)(layout, batch[Columns.OBS])
        if len(layout) == 1:  # One task in the whole batch.
            out = torch.func.functional_call(self.wrapper, layout[0][1], (batch,))
            return out[Columns.ACTION_DIST_INPUTS]
        inputs = None
        for index, task_params in layout:
            group = tree.map_structure(lambda x, i=index: x[i], batch)
            group_inputs = torch.func.functional_call(self.wrapper, task_params, (group,))[
                Columns.ACTION_DIST_INPUTS
            ]
            if inputs is None:
                inputs = group_inputs.new_empty((len(row_tasks), *group_inputs.shape[1:]))
            inputs[index] = group_inputs
        return inputs

    def sample(self, inputs: torch.Tensor, draws: Any) -> dict:
        """Actions (each row with its own noise, see ``sample_actions``) and their log-probs."""
        return sample_actions(self.dist_cls, inputs, draws)


class MAMLEnvRunner(SingleAgentPlanMixin, SingleAgentEnvRunner):
    """``SingleAgentEnvRunner`` that samples a whole plan of MAML task episodes at once."""

    def _plan_forward(self, jobs: list, plan: EpisodePlan):
        weights = _RowWeights(self.module, [job.weights[DEFAULT_MODULE_ID] for job in jobs])
        keys = [(row, None) for row in range(self.num_envs)]

        @torch.no_grad()
        def forward(batch: dict, **kwargs) -> dict:
            inputs = weights.inputs(batch, plan.row_task, plan.version)
            return weights.sample(inputs, functools.partial(plan.draws, keys))

        return forward


class MultiAgentMAMLEnvRunner(MultiAgentPlanMixin, MultiAgentEnvRunner):
    """``MultiAgentEnvRunner`` that samples a whole plan of MAML task episodes at once."""

    def _plan_forward(self, jobs: list, plan: EpisodePlan):
        modules = {
            mid: _RowWeights(
                self.module[mid],
                [job.weights[mid] for job in jobs] if mid in jobs[0].weights else None,
            )
            for mid in self.module.keys()
        }

        @torch.no_grad()
        def forward(batch: dict, rows_of: dict | None = None, **kwargs) -> dict:
            """``rows_of``: each module's ``(row, agent)`` per batch row (None: RLlib's)."""
            rows_of = self._rows_of_batch() if rows_of is None else rows_of
            out = {}
            for mid, module_batch in batch.items():
                rows = rows_of[mid]
                row_tasks = plan.row_task[[row for row, _ in rows]]
                key = (plan.version, tuple(row for row, _ in rows))
                inputs = modules[mid].inputs(module_batch, row_tasks, key)
                out[mid] = modules[mid].sample(inputs, functools.partial(plan.draws, rows))
            return out

        return forward


def _row_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    """Row i of ``x`` times row i's own weight matrix (``[rows, out, in]``), plus its bias."""
    if x.dim() != 2 or len(x) != len(weight):
        raise ValueError(
            f"A Linear layer of the RLModule got input of shape {tuple(x.shape)}, not one row "
            f"per batch row ({len(weight)}), so per-task weights cannot be applied row by row. "
            "Set `rllib_marl_meta.algorithms.maml.env_runner.ROW_WISE_LINEARS = False` for "
            "this module."
        )
    out = torch.bmm(weight, x.unsqueeze(-1)).squeeze(-1)
    return out if bias is None else out + bias


def _row_wise_forwards(linears: dict[str, torch.nn.Linear], row_params: dict) -> list:
    """Per Linear layer, a forward that applies row i's own weights to input row i."""
    return [
        (
            layer,
            functools.partial(
                _row_linear,
                weight=row_params[f"module.{name}.weight"],
                bias=row_params.get(f"module.{name}.bias"),
            ),
        )
        for name, layer in linears.items()
    ]


@contextlib.contextmanager
def _row_wise(forwards: list):
    # `object.__setattr__`: nn.Module's own costs more than the layers' products here.
    for layer, forward in forwards:
        object.__setattr__(layer, "forward", forward)
    try:
        yield
    finally:
        for layer, _ in forwards:
            object.__delattr__(layer, "forward")


def _one(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(0)

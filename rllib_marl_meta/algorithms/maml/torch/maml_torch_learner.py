"""MAML's math in torch, top to bottom, and the torch Learner that runs it.

Notation: ``theta`` are the meta-parameters, ``D_k`` the episodes a task sampled with its
step-``k`` parameters (``D_0`` with ``theta``), ``K`` the number of inner steps.

Every function works on ``T`` tasks at once: each parameter carries a leading task dimension
(``theta`` repeated ``T`` times, then each task's own adapted values), and a :class:`TaskBatch`
holds the ``T`` tasks' rows of one adaptation step, concatenated for the losses and padded for
the forward pass, which runs once for all tasks (``torch.func.vmap`` over
``torch.func.functional_call``). A task's loss is the mean over its own rows, and the tasks'
losses are summed: task ``t``'s parameters only touch task ``t``'s loss, so one backward pass
gives every task its own inner gradient.

0. ``stack_tasks``  the ``T`` tasks' batches of one step as one :class:`TaskBatch`;
1. ``inner_loss``   each task's adaptation objective on ``D_k``, by one of the estimators in
   ``INNER_LOSSES`` (plain policy gradient, ProMP's LVC, or DiCE);
2. ``inner_update`` ``theta_{k+1} = theta_k - inner_lr * grad L_in(theta_k, D_k)`` per task.
   This is the ONE inner update: sampling-time adaptation and the meta-update both call it.
   ``create_graph=True`` keeps the inner gradient in the graph (second order);
   ``create_graph=False`` leaves it a constant (first order, FOMAML);
3. ``outer_loss``   PPO-clip surrogate + adaptive KL penalty - entropy bonus on ``D_K``, the
   POST-adaptation episodes, evaluated at each task's adapted parameters ``theta_K(theta)``;
4. ``meta_loss``    chains 2 K times from ``theta`` and applies 3. The gradient of the sum of
   its task losses w.r.t. ``theta`` is the sum of the tasks' meta-gradients.

Parameters are plain ``{module_id: {param_name: tensor}}`` dicts evaluated with
``torch.func.functional_call``, so any feed-forward torch RLModule of the observations works,
and multi-module gradients are mapped by name (RLlib 2.60's ``TorchDifferentiableLearner`` maps
them by position and gives every module the first module's gradients).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import tree
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.models.base import ENCODER_OUT, ActorCriticEncoder
from ray.rllib.utils.typing import ModuleID

from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES, EPISODE_INDEX, VALUE_TARGETS
from rllib_marl_meta.algorithms.maml.maml_learner import MAMLLearner
from rllib_marl_meta.algorithms.maml.torch.central_value import CENTRAL_VALUE_MODULE_ID

logger = logging.getLogger(__name__)

# Parameters per module; in the functions below each tensor has a leading task dimension.
Params = dict[ModuleID, dict[str, torch.Tensor]]
Batch = Mapping[ModuleID, Mapping[str, Any]]  # one task's batch of one step, as RLlib builds it


@dataclass(frozen=True)
class TaskRows:
    """One module's rows of ``T`` tasks at one adaptation step.

    ``columns`` are the tasks' batches concatenated, task after task, with episode indices
    made unique across tasks; ``weight`` is ``1 / (rows of the row's task)``, so that
    ``sum(weight * x)`` over a task's rows is that task's mean of ``x``. ``padded_obs`` holds
    the observations as ``[T, max_rows, ...]`` (zeros after a task's rows) for the batched
    forward pass; ``index`` picks the real rows out of the flattened ``[T * max_rows]``.
    """

    columns: dict[str, Any]
    task: torch.Tensor  # [rows]: the task of each row
    weight: torch.Tensor  # [rows]
    rows_per_task: torch.Tensor  # [T]
    padded_obs: Any  # [T, max_rows, ...]
    index: torch.Tensor  # [rows]: positions in the flattened [T * max_rows]

    @property
    def num_tasks(self) -> int:
        return len(self.rows_per_task)

    def per_task_sum(self, values: torch.Tensor) -> torch.Tensor:
        """``[T]``: the sum of ``values`` (one per row) over each task's rows."""
        return values.new_zeros(self.num_tasks).index_add(0, self.task, values)

    def per_task_mean(self, values: torch.Tensor) -> torch.Tensor:
        """``[T]``: the mean of ``values`` over each task's rows (0 for a task without rows)."""
        return self.per_task_sum(values * self.weight)


TaskBatch = dict[ModuleID, TaskRows]


def stack_tasks(batches: Sequence[Batch]) -> TaskBatch:
    """The ``T`` tasks' batches of one adaptation step as one batch per module.

    A module without rows in some task (its agents did not act there) gets no rows for it.
    """
    module_ids = sorted({mid for batch in batches for mid in batch})
    return {
        mid: _task_rows(
            len(batches), [(t, batch[mid]) for t, batch in enumerate(batches) if mid in batch]
        )
        for mid in module_ids
    }


def _task_rows(num_tasks: int, parts: list[tuple[int, Mapping[str, Any]]]) -> TaskRows:
    """One module's ``(task, batch)`` parts as :class:`TaskRows` of ``num_tasks`` tasks."""
    lengths = [len(tree.flatten(part[Columns.OBS])[0]) for _, part in parts]
    device = tree.flatten(parts[0][1][Columns.OBS])[0].device
    rows_per_task = torch.zeros(num_tasks, dtype=torch.long, device=device)
    rows_per_task[[t for t, _ in parts]] = torch.tensor(lengths, device=device)
    columns = tree.map_structure(lambda *xs: torch.cat(xs), *[part for _, part in parts])
    if EPISODE_INDEX in columns:  # One index per episode across all tasks (for DiCE).
        episodes = [int(part[EPISODE_INDEX].max()) + 1 for _, part in parts]
        offsets = torch.tensor([0, *episodes[:-1]], device=device).cumsum(0)
        columns[EPISODE_INDEX] = columns[EPISODE_INDEX] + offsets.repeat_interleave(
            torch.tensor(lengths, device=device)
        )
    task = torch.arange(num_tasks, device=device).repeat_interleave(rows_per_task)
    max_rows = int(rows_per_task.max())
    first_row = rows_per_task.cumsum(0) - rows_per_task
    index = task * max_rows + torch.arange(len(task), device=device) - first_row[task]

    # The losses' precision: that of the advantages (float32, or float64 in a double module).
    weight_dtype = columns[ADVANTAGES].dtype if ADVANTAGES in columns else torch.float32

    def pad(column: torch.Tensor) -> torch.Tensor:
        padded = column.new_zeros(num_tasks * max_rows, *column.shape[1:])
        padded[index] = column
        return padded.view(num_tasks, max_rows, *column.shape[1:])

    return TaskRows(
        columns=columns,
        task=task,
        weight=1.0 / rows_per_task[task].to(weight_dtype),
        rows_per_task=rows_per_task,
        padded_obs=tree.map_structure(pad, columns[Columns.OBS]),
        index=index,
    )


def stack_params(params: Sequence[Params]) -> Params:
    """Per-task parameter sets as one set with a leading task dimension."""
    return {
        mid: {name: torch.stack([p[mid][name] for p in params]) for name in params[0][mid]}
        for mid in params[0]
    }


def repeat_params(theta: Params, num_tasks: int) -> Params:
    """``theta`` (no task dimension) as ``num_tasks`` identical task parameters (no copy)."""
    return {
        mid: {name: p.expand(num_tasks, *p.shape) for name, p in module_params.items()}
        for mid, module_params in theta.items()
    }


class _PolicyForward(torch.nn.Module):
    """An RLModule's action-distribution inputs as ``forward``, for ``functional_call``.

    RLlib's default PPO module with a separate critic (``vf_share_layers=False``) runs its
    critic encoder in every forward pass; the policy losses don't use it, so it is skipped.
    """

    def __init__(self, module: torch.nn.Module) -> None:
        super().__init__()
        self.module = module
        encoder = getattr(module, "encoder", None)
        self.actor_only = (
            isinstance(encoder, ActorCriticEncoder)
            and not encoder.config.shared
            and hasattr(module, "pi")
        )

    def forward(self, obs: Any) -> torch.Tensor:
        batch = {Columns.OBS: obs}
        if self.actor_only:
            return self.module.pi(self.module.encoder.actor_encoder(batch)[ENCODER_OUT])
        return self.module(batch)[Columns.ACTION_DIST_INPUTS]


def action_distribution(module: torch.nn.Module, params: Mapping[str, torch.Tensor], rows):
    """Each row's train action distribution under its own task's ``params``."""
    policy = _PolicyForward(module)

    def task_forward(task_params, obs):
        return torch.func.functional_call(policy, task_params, (obs,))

    named = {f"module.{name}": p for name, p in params.items()}
    inputs = torch.func.vmap(task_forward)(named, rows.padded_obs)
    inputs = inputs.flatten(0, 1)[rows.index]
    return module.get_train_action_dist_cls().from_logits(inputs)


# --- Inner-loss estimators: (per-step log pi(a|s) under the parameters, columns) -> per-step
# loss terms. A task's inner loss is their mean over its steps, so ``inner_lr`` has the same
# scale for all of them.


def pg_loss(logp: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``-log pi(a|s) * A``: the likelihood-ratio policy gradient of the MAML paper.

    Its gradient is the usual policy-gradient estimate. Its Hessian is not an estimate of the
    objective's Hessian: it lacks the products of score functions (``grad log pi``), so
    second-order MAML with it gets a biased meta-gradient.
    """
    return -logp * batch[ADVANTAGES]


def lvc_loss(logp: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``-pi(a|s) / pi_sampling(a|s) * A``: ProMP's low-variance curvature estimator.

    Same gradient as ``pg`` at the sampling policy; its Hessian adds each step's own
    score-function product, but not the products across time steps (biased, low variance).
    """
    return -torch.exp(logp - batch[Columns.ACTION_LOGP]) * batch[ADVANTAGES]


def dice_loss(logp: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """DiCE (Foerster et al., 2018) with a baseline that is unbiased at every order.

    ``-(magic(W_t) - magic(W_{t-1})) * A_t`` with ``W_t = sum_{t' <= t} log pi_t'`` over
    the step's own episode (``W_{-1} = 0``) and DiCE's MagicBox ``magic(x) = exp(x - x.detach())``
    (value 1, ``grad magic(x) = magic(x) grad x``). The reward at t depends on all actions up to
    t, so DiCE's ``sum_t magic(W_t) r_t`` has derivatives of every order whose expectations are
    those of ``E[sum_t r_t]``; the second-order MAML meta-gradient needs its Hessian.

    First order: every MagicBox is 1, so the gradient is ``-mean_t[(grad W_t - grad W_{t-1})
    A_t] = -mean_t[grad log pi_t A_t]``, exactly ``pg``'s, at any parameters (in particular at
    the sampling ones). Higher orders: for ``A_t = R_t - b_t`` (``R_t`` the return-to-go, ``b_t``
    independent of ``a_t`` and later actions), summing by parts gives ``sum_t magic(W_t) r_t +
    sum_t magic(W_{t-1}) (1 - magic(log pi_t)) b_t - R_0``: DiCE's objective, a baseline term
    whose derivatives of every order have expectation 0 (given the past, ``E_a[grad^n
    magic(log pi(a|s))] = grad^n sum_a pi(a|s) = 0``; Mao et al., 2019), and a constant; hence
    unbiased at every order. With ``gamma`` or ``lambda_`` < 1 it keeps the bias these already
    give ``pg``. Its value is always 0: only its derivatives matter. Multi-agent: ``W_t`` sums
    one agent's own actions; the other agents count as part of the environment, as in ``pg``.
    """
    if EPISODE_INDEX not in batch:
        raise KeyError(
            f"The 'dice' inner loss needs the {EPISODE_INDEX!r} column that MAML's "
            "MetaAdvantages learner-connector piece adds."
        )
    episode = batch[EPISODE_INDEX]
    lengths = torch.bincount(episode)
    first_step = (lengths.cumsum(0) - lengths)[episode]
    step = torch.arange(len(episode), device=episode.device) - first_step
    # One row per episode, so each cumulative sum (and its gradient) stays within its episode.
    table = logp.new_zeros(len(lengths), int(lengths.max())).index_put((episode, step), logp)
    upto_t = table.cumsum(1)[episode, step]
    before_t = upto_t - logp
    magic_upto_t, magic_before_t = (torch.exp(w - w.detach()) for w in (upto_t, before_t))
    return -(magic_upto_t - magic_before_t) * batch[ADVANTAGES]


InnerLoss = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]
INNER_LOSSES: dict[str, InnerLoss] = {"pg": pg_loss, "lvc": lvc_loss, "dice": dice_loss}


def inner_loss(
    module: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    rows: TaskRows,
    estimator: str = "pg",
) -> torch.Tensor:
    """``[T]``: each task's adaptation objective on one module's rows.

    The mean over the task's rows of the per-step terms of ``INNER_LOSSES[estimator]``.
    """
    if estimator not in INNER_LOSSES:
        raise ValueError(
            f"Unknown inner-loss estimator {estimator!r}; use one of "
            + ", ".join(repr(name) for name in INNER_LOSSES)
            + "."
        )
    logp = action_distribution(module, params, rows).logp(rows.columns[Columns.ACTIONS])
    return rows.per_task_mean(INNER_LOSSES[estimator](logp, rows.columns))


def inner_update(
    modules: Mapping[ModuleID, torch.nn.Module],
    params: Params,
    batch: TaskBatch,
    inner_lr: float,
    *,
    create_graph: bool,
    adapt_module_ids: Iterable[ModuleID],
    estimator: str = "pg",
) -> tuple[Params, torch.Tensor | None]:
    """One inner gradient step per task on the modules in ``adapt_module_ids``; others pass
    through.

    Each module's gradient comes from its own agents' rows of each task. Returns the new
    parameters and the (detached) inner loss of each task (None if no module adapts).
    """
    ids = [mid for mid in adapt_module_ids if mid in batch]
    if not ids:
        return params, None
    task_losses = sum(inner_loss(modules[mid], params[mid], batch[mid], estimator) for mid in ids)
    flat = [(mid, name, p) for mid in ids for name, p in params[mid].items()]
    grads = torch.autograd.grad(
        task_losses.sum(), [p for _, _, p in flat], create_graph=create_graph, allow_unused=True
    )
    adapted = {mid: dict(module_params) for mid, module_params in params.items()}
    for (mid, name, p), g in zip(flat, grads, strict=True):
        if g is not None:
            adapted[mid][name] = p - inner_lr * g
    return adapted, task_losses.detach()


def outer_loss(
    module,
    params,
    rows: TaskRows,
    *,
    clip_param: float,
    kl_coeff: float,
    entropy_coeff: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``[T]``: PPO-clip surrogate + ``kl_coeff`` * KL(sampling || adapted) - entropy bonus,
    each a mean over the task's rows; and the three terms per task (detached)."""
    columns = rows.columns
    curr = action_distribution(module, params, rows)
    ratio = torch.exp(curr.logp(columns[Columns.ACTIONS]) - columns[Columns.ACTION_LOGP])
    advantages = columns[ADVANTAGES]
    surrogate = rows.per_task_mean(
        -torch.min(ratio * advantages, ratio.clamp(1.0 - clip_param, 1.0 + clip_param) * advantages)
    )
    sampling = module.get_train_action_dist_cls().from_logits(columns[Columns.ACTION_DIST_INPUTS])
    kl = rows.per_task_mean(sampling.kl(curr))
    entropy = rows.per_task_mean(curr.entropy())
    loss = surrogate + kl_coeff * kl - entropy_coeff * entropy
    return loss, {"surrogate": surrogate.detach(), "kl": kl.detach(), "entropy": entropy.detach()}


def meta_loss(
    modules: Mapping[ModuleID, torch.nn.Module],
    theta: Params,
    step_batches: list[TaskBatch],
    *,
    inner_lr: float,
    second_order: bool,
    adapt_module_ids: Iterable[ModuleID],
    estimator: str,
    clip_param: float,
    kl_coeffs: Mapping[ModuleID, float],
    entropy_coeff: float,
) -> tuple[torch.Tensor, dict[ModuleID, dict[str, torch.Tensor]]]:
    """``[T]``: each task's outer loss after re-running its K inner steps differentiably from
    ``theta`` (repeated per task); and each module's outer-loss terms per task."""
    params = theta
    for batch in step_batches[:-1]:  # D_0 .. D_{K-1}
        params, _ = inner_update(
            modules,
            params,
            batch,
            inner_lr,
            create_graph=second_order,
            adapt_module_ids=adapt_module_ids,
            estimator=estimator,
        )
    post_adaptation = step_batches[-1]  # D_K
    total, stats = 0.0, {}
    for mid, rows in post_adaptation.items():
        if mid not in params:  # Not trained (``policies_to_train``): no outer loss.
            continue
        loss, stats[mid] = outer_loss(
            modules[mid],
            params[mid],
            rows,
            clip_param=clip_param,
            kl_coeff=kl_coeffs[mid],
            entropy_coeff=entropy_coeff,
        )
        total = total + loss
    return total, stats


class MAMLTorchLearner(MAMLLearner, TorchLearner):
    """Runs the math above on a Learner; several Learners all-reduce the meta-gradient."""

    def _make_modules_ddp_if_necessary(self) -> None:
        # The meta-gradient flows through functional calls, which DDP's hooks don't see; it
        # is all-reduced explicitly in `_meta_gradient_step` instead.
        pass

    def _all_finite(self, values: torch.Tensor) -> bool:
        return bool(torch.isfinite(values).all())

    def _non_finite_names(self, params: Params) -> list[str]:
        return [
            f"{mid}/{name}"
            for mid, module_params in params.items()
            for name, p in module_params.items()
            if not torch.isfinite(p).all()
        ]

    def _meta_parameters(self) -> Params:
        return {
            mid: dict(self.module[mid].named_parameters())
            for mid in self.module.keys()
            if self.should_module_be_updated(mid)
        }

    def _modules(self) -> dict[ModuleID, torch.nn.Module]:
        return {mid: self.module[mid].unwrapped() for mid in self.module.keys()}

    def _adapt_tasks(self, params: list[Params | None], batches: list[Batch]) -> list[Params]:
        theta = {
            mid: {n: p.detach() for n, p in mp.items()}
            for mid, mp in self._meta_parameters().items()
        }
        start = stack_params([theta if p is None else p for p in params])
        start = {
            mid: {n: p.requires_grad_(True) for n, p in mp.items()} for mid, mp in start.items()
        }
        adapted, task_losses = inner_update(
            self._modules(),
            start,
            stack_tasks(batches),
            self.config.inner_lr,
            create_graph=False,
            adapt_module_ids=self._adapt_module_ids(),
            estimator=self.config.inner_loss,
        )
        if task_losses is not None:
            self._log_inner_loss(float(task_losses.mean()))
        return [
            {mid: {n: p[t].detach() for n, p in mp.items()} for mid, mp in adapted.items()}
            for t in range(len(batches))
        ]

    def _inference_weights(self, params: Params) -> dict[ModuleID, dict[str, Any]]:
        weights = {}
        for mid, module_params in params.items():
            if mid == CENTRAL_VALUE_MODULE_ID:  # Learner-only: EnvRunners don't have it.
                continue
            state = self.module[mid].unwrapped().get_state(inference_only=True)
            for name, value in module_params.items():
                if name in state:
                    state[name] = value.detach().cpu().numpy()
            weights[mid] = state
        return weights

    def _stack_steps(self, task_ids: list[int]) -> list[TaskBatch]:
        num_steps = len(self._task_batches[task_ids[0]]) if task_ids else 0
        return [stack_tasks([self._task_batches[t][k] for t in task_ids]) for k in range(num_steps)]

    def _meta_gradient_step(
        self, task_ids: list[int], step_batches: list[TaskBatch], num_tasks_total: int
    ) -> dict[ModuleID, dict[str, float]]:
        theta = self._meta_parameters()
        task_losses = torch.zeros(len(task_ids), device=self._device)
        stat_sums: dict[ModuleID, dict[str, torch.Tensor]] = {}
        value_losses = task_losses
        if task_ids:
            policy_losses, stats = meta_loss(
                self._modules(),
                repeat_params(theta, len(task_ids)),
                step_batches,
                inner_lr=self.config.inner_lr,
                second_order=self.config.meta_gradient == "second_order",
                adapt_module_ids=self._adapt_module_ids(),
                estimator=self.config.inner_loss,
                clip_param=self.config.clip_param,
                kl_coeffs=self.curr_kl_coeffs_per_module,
                entropy_coeff=self.config.entropy_coeff,
            )
            value_losses = self._value_loss(step_batches, theta, len(task_ids))
            task_losses = task_losses + policy_losses + value_losses
            for mid, module_stats in stats.items():
                stat_sums[mid] = {k: v.sum() for k, v in module_stats.items()}
                stat_sums[mid]["tasks"] = (step_batches[-1][mid].rows_per_task > 0).sum()
        if not torch.isfinite(task_losses).all():
            bad = task_ids[int(torch.nonzero(~torch.isfinite(task_losses))[0])]
            raise FloatingPointError(
                f"MAML: the outer loss of task {bad} is not finite. Its episodes and advantages "
                f"are finite, so the policy itself diverged: lower `lr` (now {self.config.lr}) "
                f"or `inner_lr` (now {self.config.inner_lr}), or set `grad_clip`."
            )
        # Mean over ALL tasks of the meta-batch, wherever they were computed.
        total = task_losses.sum() / num_tasks_total
        flat = [(mid, p) for mid, mp in theta.items() for p in mp.values()]
        for optim in self._optimizer_parameters:
            optim.zero_grad(set_to_none=True)
        if total.requires_grad:
            total.backward()
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for _, p in flat]
        stats_vec = self._pack_stats(stat_sums)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            for g in grads:
                dist.all_reduce(g, op=dist.ReduceOp.SUM)
            dist.all_reduce(stats_vec, op=dist.ReduceOp.SUM)
        if not torch.isfinite(torch.stack([g.abs().sum() for g in grads])).all():
            names = [
                f"{mid}/{name}"
                for mid, mp in theta.items()
                for name, p in mp.items()
                if p.grad is not None and not torch.isfinite(p.grad).all()
            ]
            message = f"MAML: non-finite meta-gradient for parameters {names[:3]}"
            if not self.config.torch_skip_nan_gradients:
                raise FloatingPointError(
                    f"{message}. Lower `lr` or set `grad_clip`; "
                    "`config.learners(torch_skip_nan_gradients=True)` skips such steps instead."
                )
            logger.warning("%s: step skipped (torch_skip_nan_gradients=True).", message)
            self._log_outer_loss(float(total.detach()))
            return self._unpack_stats(stats_vec)
        if self.config.baseline != "linear":
            self._log_value_loss(float(value_losses.detach().sum()) / max(1, len(task_ids)))
        gradients = {self.get_param_ref(p): g for (_, p), g in zip(flat, grads, strict=True)}
        self.apply_gradients(self.postprocess_gradients(gradients))
        self._log_outer_loss(float(total.detach()))
        return self._unpack_stats(stats_vec)

    def _value_loss(self, step_batches: list[TaskBatch], theta: Params, num_tasks: int):
        """``[T]``: value regression on all of each task's batches: each trained module's own
        value head (``baseline="value"``) or the central critic on every module's rows
        (``"central_value"``); zero for the linear baseline."""
        loss = torch.zeros(num_tasks, device=self._device)
        baseline = self.config.baseline
        if baseline not in ("value", "central_value") or self.config.vf_loss_coeff == 0:
            return loss
        for batch in step_batches:
            for mid, rows in batch.items():
                critic = CENTRAL_VALUE_MODULE_ID if baseline == "central_value" else mid
                if critic in theta:
                    values = self.module[critic].unwrapped().compute_values(rows.columns)
                    loss = loss + rows.per_task_mean((values - rows.columns[VALUE_TARGETS]) ** 2)
        return self.config.vf_loss_coeff * loss

    def _pack_stats(self, stat_sums) -> torch.Tensor:
        rows = [
            [s.get(k, torch.zeros(())) for k in ("surrogate", "kl", "entropy", "tasks")]
            for s in (stat_sums.get(mid, {}) for mid in sorted(self.module.keys()))
        ]
        # On the Learner's device: NCCL (GPU Learners) all-reduces device tensors only.
        return torch.tensor(
            [[float(v) for v in row] for row in rows], dtype=torch.float64, device=self._device
        )

    def _unpack_stats(self, stats_vec: torch.Tensor) -> dict[ModuleID, dict[str, float]]:
        out = {}
        for mid, row in zip(sorted(self.module.keys()), stats_vec.tolist(), strict=True):
            surrogate, kl, entropy, tasks = row
            if tasks > 0:
                out[mid] = {
                    "surrogate": surrogate / tasks,
                    "kl": kl / tasks,
                    "entropy": entropy / tasks,
                }
        return out

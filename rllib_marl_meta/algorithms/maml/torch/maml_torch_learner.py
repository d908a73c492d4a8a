"""MAML's math in torch, top to bottom, and the torch Learner that runs it.

Notation: ``theta`` are the meta-parameters, ``D_k`` the episodes a task sampled with its
step-``k`` parameters (``D_0`` with ``theta``), ``K`` the number of inner steps.

1. ``inner_loss``   the adaptation objective on ``D_k``, by one of the estimators in
   ``INNER_LOSSES`` (plain policy gradient, ProMP's LVC, or DiCE);
2. ``inner_update`` ``theta_{k+1} = theta_k - inner_lr * grad L_in(theta_k, D_k)``. This is the
   ONE inner update: sampling-time adaptation and the meta-update both call it.
   ``create_graph=True`` keeps the inner gradient in the graph (second order);
   ``create_graph=False`` leaves it a constant (first order, FOMAML);
3. ``outer_loss``   PPO-clip surrogate + adaptive KL penalty - entropy bonus on ``D_K``, the
   POST-adaptation episodes, evaluated at the adapted parameters ``theta_K(theta)``;
4. ``task_meta_loss`` chains 2 K times from ``theta`` and applies 3. Its gradient w.r.t.
   ``theta`` is the task's meta-gradient.

Parameters are plain ``{module_id: {param_name: tensor}}`` dicts evaluated with
``torch.func.functional_call``, so any torch RLModule works, and multi-module gradients are
mapped by name (RLlib 2.60's ``TorchDifferentiableLearner`` maps them by position and gives every
module the first module's gradients).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.utils.typing import ModuleID

from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES, EPISODE_INDEX, VALUE_TARGETS
from rllib_marl_meta.algorithms.maml.maml_learner import MAMLLearner
from rllib_marl_meta.algorithms.maml.torch.central_value import CENTRAL_VALUE_MODULE_ID

logger = logging.getLogger(__name__)

Params = dict[ModuleID, dict[str, torch.Tensor]]
Batch = Mapping[ModuleID, Mapping[str, torch.Tensor]]


def action_distribution(module: torch.nn.Module, params: Mapping[str, torch.Tensor], batch):
    """The module's train action distribution under ``params`` (not its own weights)."""
    fwd_out = torch.func.functional_call(module, dict(params), (batch,))
    return module.get_train_action_dist_cls().from_logits(fwd_out[Columns.ACTION_DIST_INPUTS])


# --- Inner-loss estimators: (per-step log pi(a|s) under the parameters, batch) -> loss ---------
# Each is a mean over the batch's steps, so ``inner_lr`` has the same scale for all of them.


def pg_loss(logp: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``-mean(log pi(a|s) * A)``: the likelihood-ratio policy gradient of the MAML paper.

    Its gradient is the usual policy-gradient estimate. Its Hessian is not an estimate of the
    objective's Hessian: it lacks the products of score functions (``grad log pi``), so
    second-order MAML with it gets a biased meta-gradient.
    """
    return -(logp * batch[ADVANTAGES]).mean()


def lvc_loss(logp: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """``-mean(pi(a|s) / pi_sampling(a|s) * A)``: ProMP's low-variance curvature estimator.

    Same gradient as ``pg`` at the sampling policy; its Hessian adds each step's own
    score-function product, but not the products across time steps (biased, low variance).
    """
    return -(torch.exp(logp - batch[Columns.ACTION_LOGP]) * batch[ADVANTAGES]).mean()


def dice_loss(logp: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """DiCE (Foerster et al., 2018) with a baseline that is unbiased at every order.

    ``-mean_t[(magic(W_t) - magic(W_{t-1})) * A_t]`` with ``W_t = sum_{t' <= t} log pi_t'`` over
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
    return -((magic_upto_t - magic_before_t) * batch[ADVANTAGES]).mean()


InnerLoss = Callable[[torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]
INNER_LOSSES: dict[str, InnerLoss] = {"pg": pg_loss, "lvc": lvc_loss, "dice": dice_loss}


def inner_loss(
    module: torch.nn.Module,
    params: Mapping[str, torch.Tensor],
    batch: Mapping[str, torch.Tensor],
    estimator: str = "pg",
) -> torch.Tensor:
    """The adaptation objective on one module's batch: ``INNER_LOSSES[estimator]``."""
    if estimator not in INNER_LOSSES:
        raise ValueError(
            f"Unknown inner-loss estimator {estimator!r}; use one of "
            + ", ".join(repr(name) for name in INNER_LOSSES)
            + "."
        )
    logp = action_distribution(module, params, batch).logp(batch[Columns.ACTIONS])
    return INNER_LOSSES[estimator](logp, batch)


def inner_update(
    modules: Mapping[ModuleID, torch.nn.Module],
    params: Params,
    batch: Batch,
    inner_lr: float,
    *,
    create_graph: bool,
    adapt_module_ids: Iterable[ModuleID],
    estimator: str = "pg",
) -> tuple[Params, torch.Tensor]:
    """One inner gradient step on the modules in ``adapt_module_ids``; others pass through.

    Each module's gradient comes from its own agents' data (its entry in ``batch``).
    Returns the new parameters and the (detached) inner loss.
    """
    ids = [mid for mid in adapt_module_ids if mid in batch]
    if not ids:
        return params, torch.zeros(())
    loss = sum(inner_loss(modules[mid], params[mid], batch[mid], estimator) for mid in ids)
    flat = [(mid, name, p) for mid in ids for name, p in params[mid].items()]
    grads = torch.autograd.grad(
        loss, [p for _, _, p in flat], create_graph=create_graph, allow_unused=True
    )
    adapted = {mid: dict(module_params) for mid, module_params in params.items()}
    for (mid, name, p), g in zip(flat, grads, strict=True):
        if g is not None:
            adapted[mid][name] = p - inner_lr * g
    return adapted, loss.detach()


def outer_loss(
    module,
    params,
    batch,
    *,
    clip_param: float,
    kl_coeff: float,
    entropy_coeff: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO-clip surrogate + ``kl_coeff`` * KL(sampling || adapted) - entropy bonus."""
    curr = action_distribution(module, params, batch)
    ratio = torch.exp(curr.logp(batch[Columns.ACTIONS]) - batch[Columns.ACTION_LOGP])
    advantages = batch[ADVANTAGES]
    surrogate = -torch.min(
        ratio * advantages, ratio.clamp(1.0 - clip_param, 1.0 + clip_param) * advantages
    ).mean()
    sampling = module.get_train_action_dist_cls().from_logits(batch[Columns.ACTION_DIST_INPUTS])
    kl = sampling.kl(curr).mean()
    entropy = curr.entropy().mean()
    loss = surrogate + kl_coeff * kl - entropy_coeff * entropy
    return loss, {"surrogate": surrogate.detach(), "kl": kl.detach(), "entropy": entropy.detach()}


def task_meta_loss(
    modules: Mapping[ModuleID, torch.nn.Module],
    theta: Params,
    step_batches: list[Batch],
    *,
    inner_lr: float,
    second_order: bool,
    adapt_module_ids: Iterable[ModuleID],
    estimator: str,
    clip_param: float,
    kl_coeffs: Mapping[ModuleID, float],
    entropy_coeff: float,
) -> tuple[torch.Tensor, dict[ModuleID, dict[str, torch.Tensor]]]:
    """One task's outer loss after re-running its K inner steps differentiably from theta."""
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
    for mid, module_batch in post_adaptation.items():
        if mid not in params:  # Not trained (``policies_to_train``): no outer loss.
            continue
        loss, stats[mid] = outer_loss(
            modules[mid],
            params[mid],
            module_batch,
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

    def _adapt_one_step(self, params: Params | None, batch: Batch) -> Params:
        theta = self._meta_parameters()
        start = (
            theta
            if params is None
            else {
                mid: {n: p.detach().requires_grad_(True) for n, p in mp.items()}
                for mid, mp in params.items()
            }
        )
        adapted, loss = inner_update(
            self._modules(),
            start,
            batch,
            self.config.inner_lr,
            create_graph=False,
            adapt_module_ids=self._adapt_module_ids(),
            estimator=self.config.inner_loss,
        )
        self._log_inner_loss(float(loss))
        return {mid: {n: p.detach() for n, p in mp.items()} for mid, mp in adapted.items()}

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

    def _meta_gradient_step(
        self, task_ids: list[int], num_tasks_total: int
    ) -> dict[ModuleID, dict[str, float]]:
        modules = self._modules()
        theta = self._meta_parameters()
        kl_coeffs = {mid: self.curr_kl_coeffs_per_module[mid] for mid in self.module.keys()}
        total = torch.zeros((), device=self._device)
        task_losses = []
        value_loss_sum = torch.zeros((), device=self._device)
        stat_sums: dict[ModuleID, dict[str, torch.Tensor]] = {}
        for task_id in task_ids:
            loss, stats = task_meta_loss(
                modules,
                theta,
                self._task_batches[task_id],
                inner_lr=self.config.inner_lr,
                second_order=self.config.meta_gradient == "second_order",
                adapt_module_ids=self._adapt_module_ids(),
                estimator=self.config.inner_loss,
                clip_param=self.config.clip_param,
                kl_coeffs=kl_coeffs,
                entropy_coeff=self.config.entropy_coeff,
            )
            value_loss = self._value_loss(task_id, theta)
            value_loss_sum = value_loss_sum + value_loss.detach()
            task_loss = loss + value_loss
            task_losses.append(task_loss.detach())
            total = total + task_loss
            for mid, s in stats.items():
                acc = stat_sums.setdefault(mid, {k: torch.zeros(()) for k in (*s, "tasks")})
                for k, v in s.items():
                    acc[k] = acc[k] + v.cpu()
                acc["tasks"] = acc["tasks"] + 1
        if not torch.isfinite(total):
            bad = next(t for t, v in zip(task_ids, task_losses) if not torch.isfinite(v))
            raise FloatingPointError(
                f"MAML: the outer loss of task {bad} is not finite. Its episodes and advantages "
                f"are finite, so the policy itself diverged: lower `lr` (now {self.config.lr}) "
                f"or `inner_lr` (now {self.config.inner_lr}), or set `grad_clip`."
            )
        # Mean over ALL tasks of the meta-batch, wherever they were computed.
        total = total / num_tasks_total
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
            self._log_value_loss(float(value_loss_sum) / max(1, len(task_ids)))
        gradients = {self.get_param_ref(p): g for (_, p), g in zip(flat, grads, strict=True)}
        self.apply_gradients(self.postprocess_gradients(gradients))
        self._log_outer_loss(float(total.detach()))
        return self._unpack_stats(stats_vec)

    def _value_loss(self, task_id: int, theta: Params) -> torch.Tensor:
        """Value regression on all of the task's batches: each trained module's own value head
        (``baseline="value"``) or the central critic on every module's rows
        (``"central_value"``); zero for the linear baseline."""
        baseline = self.config.baseline
        if baseline not in ("value", "central_value") or self.config.vf_loss_coeff == 0:
            return torch.zeros((), device=self._device)
        loss = torch.zeros((), device=self._device)
        for batch in self._task_batches[task_id]:
            for mid, module_batch in batch.items():
                critic = CENTRAL_VALUE_MODULE_ID if baseline == "central_value" else mid
                if critic in theta:
                    values = self.module[critic].unwrapped().compute_values(module_batch)
                    loss = loss + torch.mean((values - module_batch[VALUE_TARGETS]) ** 2)
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

"""The meta-gradient against independent references on a tiny policy.

The ``torch.func`` reference below shares nothing with the package but the module's forward
pass: its own categorical log-probabilities, inner-loss estimators (DiCE in the original
"MagicBox times per-step weight" form), KL, clipped surrogate, and ``torch.func.grad`` for the
inner step (nested ``grad`` transforms give the exact second-order term). The second reference
is the exact MAML gradient of a small tree MDP, computed by enumerating all its trajectories.
"""

from __future__ import annotations

import itertools

import gymnasium as gym
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_differentiable_learner import TorchDifferentiableLearner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES, EPISODE_INDEX
from rllib_marl_meta.algorithms.maml.torch.maml_torch_learner import (
    INNER_LOSSES,
    inner_loss,
    inner_update,
    meta_loss,
    repeat_params,
    stack_tasks,
)

INNER_LR = 0.5
CLIP = 0.2
KL_COEFF = 0.3
N = 64
ESTIMATORS = ["pg", "lvc", "dice"]


def tiny_module(seed: int) -> DefaultPPOTorchRLModule:
    torch.manual_seed(seed)
    return RLModuleSpec(
        module_class=DefaultPPOTorchRLModule,
        observation_space=gym.spaces.Box(-1.0, 1.0, (3,)),
        action_space=gym.spaces.Discrete(4),
        model_config={"fcnet_hiddens": [8], "fcnet_activation": "tanh", "vf_share_layers": False},
    ).build()


def fake_batch(module, seed: int, rows: int = N) -> dict[str, torch.Tensor]:
    """A batch as the learner connector builds it, sampled from ``module`` itself.

    Its ``rows`` steps form episodes of random lengths between 1 and 12.
    """
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(rows, 3, generator=g)
    with torch.no_grad():
        logits = module.forward_train({Columns.OBS: obs})[Columns.ACTION_DIST_INPUTS]
        # Perturb the "sampling" logits so the post-adaptation ratios differ from 1.
        logits = logits + 0.3 * torch.randn(logits.shape, generator=g)
        actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=g).squeeze(-1)
        logp = torch.log_softmax(logits, -1).gather(-1, actions[:, None]).squeeze(-1)
    return {
        Columns.OBS: obs,
        Columns.ACTIONS: actions,
        Columns.ACTION_LOGP: logp,
        Columns.ACTION_DIST_INPUTS: logits,
        ADVANTAGES: torch.randn(rows, generator=g),
        EPISODE_INDEX: episode_index(torch.randint(1, 13, (rows,), generator=g)),
    }


def episode_index(lengths: torch.Tensor) -> torch.Tensor:
    """``[0] * lengths[0] + [1] * lengths[1] + ...``, cut at ``len(lengths)`` steps."""
    return torch.searchsorted(lengths.cumsum(0), torch.arange(len(lengths)), right=True)


# --- Independent reference -------------------------------------------------------------------


def ref_log_probs(module, params, batch):
    logits = torch.func.functional_call(module, params, (batch,))[Columns.ACTION_DIST_INPUTS]
    return torch.log_softmax(logits, dim=-1)


def ref_dice_objective(logp, advantages, episodes):
    """``sum_t magic(sum_{t' <= t} log pi_t') * w_t`` per episode, ``w_t = A_t - A_{t+1}``.

    DiCE's form with per-step weights (``A`` after the episode's end is 0); it differs from the
    package's ``(magic(W_t) - magic(W_{t-1})) * A_t`` by a constant, so all derivatives agree.
    """
    total = torch.zeros((), dtype=logp.dtype)
    for e in torch.unique(episodes).tolist():
        steps = episodes == e
        cumulative = torch.cumsum(logp[steps], 0)
        adv = advantages[steps]
        weights = adv - torch.cat([adv[1:], adv.new_zeros(1)])
        total = total + (torch.exp(cumulative - cumulative.detach()) * weights).sum()
    return total


def ref_inner_loss(params, module, batch, estimator="pg"):
    logp = ref_log_probs(module, params, batch).gather(-1, batch[Columns.ACTIONS][:, None])
    logp, adv = logp.squeeze(-1), batch[ADVANTAGES]
    if estimator == "pg":
        return -(logp * adv).mean()
    if estimator == "lvc":
        return -(torch.exp(logp - batch[Columns.ACTION_LOGP]) * adv).mean()
    return -ref_dice_objective(logp, adv, batch[EPISODE_INDEX]) / len(logp)


def ref_adapt(params, module, batch, first_order, estimator):
    grads = torch.func.grad(ref_inner_loss)(params, module, batch, estimator)
    if first_order:
        grads = {k: g.detach() for k, g in grads.items()}
    return {k: params[k] - INNER_LR * grads[k] for k in params}


def ref_outer_loss(params, module, batch):
    log_probs = ref_log_probs(module, params, batch)
    logp = log_probs.gather(-1, batch[Columns.ACTIONS][:, None]).squeeze(-1)
    ratio = torch.exp(logp - batch[Columns.ACTION_LOGP])
    adv = batch[ADVANTAGES]
    surrogate = -torch.minimum(ratio * adv, ratio.clamp(1 - CLIP, 1 + CLIP) * adv).mean()
    old = torch.log_softmax(batch[Columns.ACTION_DIST_INPUTS], dim=-1)
    kl = (old.exp() * (old - log_probs)).sum(-1).mean()
    return surrogate + KL_COEFF * kl


def ref_meta_loss(params, module, batches, first_order, estimator):
    for batch in batches[:-1]:
        params = ref_adapt(params, module, batch, first_order, estimator)
    return ref_outer_loss(params, module, batches[-1])


def ref_meta_gradient(module, batches, first_order, estimator="pg"):
    params = {k: v.detach() for k, v in module.named_parameters()}
    return torch.func.grad(ref_meta_loss)(params, module, batches, first_order, estimator)


# --- Package under test ----------------------------------------------------------------------


def one_task(params: dict) -> dict:
    """One module's parameters as those of a single task (a leading task dimension of 1)."""
    return {name: p.unsqueeze(0) for name, p in params.items()}


def rows_of(batch: dict, mid: str = "p"):
    """One module's batch as the rows of a single task."""
    return stack_tasks([{mid: batch}])[mid]


def package_meta_gradient(
    modules,
    batches,
    second_order,
    adapt=None,
    estimator="pg",
    inner_lr=INNER_LR,
    kl_coeff=KL_COEFF,
):
    theta = {mid: dict(m.named_parameters()) for mid, m in modules.items()}
    loss, _ = meta_loss(
        modules,
        repeat_params(theta, 1),
        [stack_tasks([batch]) for batch in batches],
        inner_lr=inner_lr,
        second_order=second_order,
        adapt_module_ids=adapt or list(modules),
        estimator=estimator,
        clip_param=CLIP,
        kl_coeffs=dict.fromkeys(modules, kl_coeff),
        entropy_coeff=0.0,
    )
    flat = [(mid, n, p) for mid, mp in theta.items() for n, p in mp.items()]
    grads = torch.autograd.grad(loss.sum(), [p for *_, p in flat], allow_unused=True)
    out: dict = {mid: {} for mid in modules}
    for (mid, n, p), g in zip(flat, grads):
        out[mid][n] = torch.zeros_like(p) if g is None else g
    return out


def assert_grads_close(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("num_inner_steps", [1, 2])
@pytest.mark.parametrize("order", ["second_order", "first_order"])
def test_meta_gradient_matches_torch_func_reference(order, num_inner_steps, estimator):
    module = tiny_module(0)
    batches = [fake_batch(module, seed) for seed in range(num_inner_steps + 1)]
    expected = ref_meta_gradient(
        module, batches, first_order=order == "first_order", estimator=estimator
    )
    actual = package_meta_gradient(
        {"p": module},
        [{"p": b} for b in batches],
        second_order=order == "second_order",
        estimator=estimator,
    )["p"]
    assert any(g.abs().sum() > 0 for g in expected.values())
    assert_grads_close(actual, expected)


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_first_and_second_order_differ_where_inner_loss_has_curvature(estimator):
    module = tiny_module(1)
    batches = [{"p": fake_batch(module, s)} for s in (10, 11)]
    second = package_meta_gradient({"p": module}, batches, True, estimator=estimator)["p"]
    first = package_meta_gradient({"p": module}, batches, False, estimator=estimator)["p"]
    diff = sum((second[n] - first[n]).norm() ** 2 for n in second) ** 0.5
    scale = sum(second[n].norm() ** 2 for n in second) ** 0.5
    assert diff > 1e-3 * scale, "the second-order term vanished: create_graph is not honoured"


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_two_modules_match_reference_per_module(estimator):
    modules = {"a": tiny_module(2), "b": tiny_module(3)}
    batches = [
        {mid: fake_batch(modules[mid], 20 + 2 * s + i) for i, mid in enumerate(modules)}
        for s in range(2)
    ]
    actual = package_meta_gradient(modules, batches, second_order=True, estimator=estimator)
    for mid, module in modules.items():
        expected = ref_meta_gradient(
            module, [b[mid] for b in batches], first_order=False, estimator=estimator
        )
        assert_grads_close(actual[mid], expected)


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize("order", ["second_order", "first_order"])
def test_tasks_of_different_lengths_in_one_call_match_the_reference_per_task(order, estimator):
    """Batched over tasks (padded forward, per-task means) == each task's own meta-gradient.

    Three tasks with 64, 17 and 40 rows per step and two modules, where module "b" has no rows
    in task 1: the gradient of the summed task losses must be the sum of the reference's
    per-task gradients, and each task's loss its own.
    """
    modules = {"a": tiny_module(12), "b": tiny_module(13)}
    rows = {0: 64, 1: 17, 2: 40}
    tasks = [
        [
            {
                mid: fake_batch(modules[mid], 100 * t + 10 * step + i, rows[t])
                for i, mid in enumerate(modules)
                if not (mid == "b" and t == 1)
            }
            for step in range(3)  # K = 2
        ]
        for t in rows
    ]
    theta = {mid: dict(m.named_parameters()) for mid, m in modules.items()}
    losses, _ = meta_loss(
        modules,
        repeat_params(theta, len(tasks)),
        [stack_tasks([task[step] for task in tasks]) for step in range(3)],
        inner_lr=INNER_LR,
        second_order=order == "second_order",
        adapt_module_ids=list(modules),
        estimator=estimator,
        clip_param=CLIP,
        kl_coeffs=dict.fromkeys(modules, KL_COEFF),
        entropy_coeff=0.0,
    )
    first_order = order == "first_order"
    expected_losses = [
        sum(
            ref_meta_loss(
                {n: p.detach() for n, p in theta[mid].items()},
                modules[mid],
                [batch[mid] for batch in task],
                first_order,
                estimator,
            )
            for mid in task[0]
        )
        for task in tasks
    ]
    torch.testing.assert_close(losses.detach(), torch.stack(expected_losses))
    for mid, module in modules.items():
        names = list(theta[mid])
        actual = dict(
            zip(
                names,
                torch.autograd.grad(
                    losses.sum(), theta[mid].values(), retain_graph=True, allow_unused=True
                ),
            )
        )
        expected = [
            ref_meta_gradient(module, [batch[mid] for batch in task], first_order, estimator)
            for task in tasks
            if mid in task[0]
        ]
        for name in names:
            total = sum(g[name] for g in expected)
            got = torch.zeros_like(total) if actual[name] is None else actual[name]
            torch.testing.assert_close(got, total, rtol=1e-4, atol=1e-6)


# --- DiCE ------------------------------------------------------------------------------------


def inner_gradient_and_hvp(module, batch, estimator, vector):
    """The inner loss's gradient and its Hessian times ``vector`` (both per parameter name)."""
    params = dict(module.named_parameters())
    loss = inner_loss(module, one_task(params), rows_of(batch), estimator).sum()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
    names = [n for n, g in zip(params, grads) if g is not None]  # the value head is unused
    grads = [g for g in grads if g is not None]
    dot = sum((g * vector[n]).sum() for n, g in zip(names, grads))
    hvp = torch.autograd.grad(dot, [params[n] for n in names])
    return dict(zip(names, grads)), dict(zip(names, hvp))


def test_dice_first_order_gradient_equals_pg_but_its_curvature_does_not():
    module = tiny_module(9)
    batch = fake_batch(module, 50)
    with torch.no_grad():  # Sample-time log-probabilities: we are at the sampling parameters.
        params = dict(module.named_parameters())
        logp = ref_log_probs(module, params, batch)
        batch[Columns.ACTION_LOGP] = logp.gather(-1, batch[Columns.ACTIONS][:, None])[:, 0]
    g = torch.Generator().manual_seed(0)
    vector = {n: torch.randn(p.shape, generator=g) for n, p in module.named_parameters()}
    pg_grad, pg_hvp = inner_gradient_and_hvp(module, batch, "pg", vector)
    dice_grad, dice_hvp = inner_gradient_and_hvp(module, batch, "dice", vector)
    lvc_grad, lvc_hvp = inner_gradient_and_hvp(module, batch, "lvc", vector)
    assert pg_grad
    for n in pg_grad:
        torch.testing.assert_close(dice_grad[n], pg_grad[n], rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(lvc_grad[n], pg_grad[n], rtol=1e-5, atol=1e-7)
    # DiCE adds the score-function products across time steps to the Hessian; pg has none,
    # LVC only each step's own.
    for other in (pg_hvp, lvc_hvp):
        diff = sum((dice_hvp[n] - other[n]).norm() ** 2 for n in other) ** 0.5
        assert diff > 0.1 * sum(dice_hvp[n].norm() ** 2 for n in other) ** 0.5


def test_dice_needs_episode_boundaries():
    module = tiny_module(9)
    batch = fake_batch(module, 51)
    del batch[EPISODE_INDEX]
    with pytest.raises(KeyError, match=EPISODE_INDEX):
        inner_loss(module, one_task(dict(module.named_parameters())), rows_of(batch), "dice")


HORIZON = 3
NUM_ACTIONS = 4  # tiny_module's action space
ALPHA = 1.0  # inner step size on the expected return


def tree_mdp(seed: int) -> dict[str, torch.Tensor]:
    """Every trajectory of a 3-step MDP whose state is the action history so far.

    Observations, rewards and a baseline (a function of the state only) are random tables over
    histories. Returns the trajectories' steps in order (obs, actions) and per-step tables.
    """
    g = torch.Generator().manual_seed(seed)
    histories = [h for t in range(HORIZON) for h in itertools.product(range(NUM_ACTIONS), repeat=t)]
    obs = {h: torch.randn(3, generator=g, dtype=torch.float64) for h in histories}
    reward = {h: torch.randn(NUM_ACTIONS, generator=g, dtype=torch.float64) for h in histories}
    baseline = {h: 3 * torch.randn((), generator=g, dtype=torch.float64) for h in histories}
    trajectories = list(itertools.product(range(NUM_ACTIONS), repeat=HORIZON))
    steps = [(tau[:t], tau[t]) for tau in trajectories for t in range(HORIZON)]
    return {
        "obs": torch.stack([obs[h] for h, _ in steps]),
        "actions": torch.tensor([a for _, a in steps]),
        "rewards": torch.stack([reward[h][a] for h, a in steps]).view(-1, HORIZON),
        "baselines": torch.stack([baseline[h] for h, _ in steps]).view(-1, HORIZON),
    }


def trajectory_log_probs(module, params, mdp):
    """Per-step ``log pi(a_t|s_t)``, one row per trajectory, and the logits."""
    logits = torch.func.functional_call(module, params, ({Columns.OBS: mdp["obs"]},))[
        Columns.ACTION_DIST_INPUTS
    ]
    logp = torch.log_softmax(logits, -1).gather(-1, mdp["actions"][:, None])
    return logp.view(-1, HORIZON), logits


def expected_return(params, module, mdp):
    """``E[sum_t r_t]``: the sum over all trajectories of probability times return."""
    logp, _ = trajectory_log_probs(module, params, mdp)
    return (logp.sum(1).exp() * mdp["rewards"].sum(1)).sum()


def exact_maml(module, mdp, num_inner_steps):
    """The adapted parameters ``theta_k`` and the exact gradient of ``E[return](theta_K)``.

    The inner step is gradient ascent on the exact expected return, ``theta_{k+1} = theta_k +
    ALPHA * grad J(theta_k)``, differentiated through with nested ``torch.func.grad``.
    """

    def adapt(params):
        grads = torch.func.grad(expected_return)(params, module, mdp)
        return {k: params[k] + ALPHA * grads[k] for k in params}

    def meta_objective(params):
        for _ in range(num_inner_steps):
            params = adapt(params)
        return expected_return(params, module, mdp)

    thetas = [{k: v.detach() for k, v in module.named_parameters()}]
    for _ in range(num_inner_steps):
        thetas.append(adapt(thetas[-1]))
    return thetas, torch.func.grad(meta_objective)(thetas[0])


def enumerated_batch(module, params, mdp):
    """All trajectories once, each one's probability under ``params`` folded into its
    advantages (return-to-go minus the baseline): a batch mean is then an exact expectation
    divided by the number of steps."""
    with torch.no_grad():
        logp, logits = trajectory_log_probs(module, params, mdp)
    prob = logp.sum(1, keepdim=True).exp()
    to_go = mdp["rewards"].flip(1).cumsum(1).flip(1)
    return {
        Columns.OBS: mdp["obs"],
        Columns.ACTIONS: mdp["actions"],
        Columns.ACTION_LOGP: logp.reshape(-1),
        Columns.ACTION_DIST_INPUTS: logits,
        ADVANTAGES: (prob * (to_go - mdp["baselines"])).reshape(-1),
        EPISODE_INDEX: torch.arange(len(logp)).repeat_interleave(HORIZON),
    }


@pytest.mark.parametrize("num_inner_steps", [1, 2])
def test_dice_meta_gradient_is_the_exact_maml_gradient_of_an_enumerated_mdp(num_inner_steps):
    """With every trajectory in the batch, DiCE's meta-gradient is exact; pg's and LVC's are not.

    Our inner loss is ``-1/n`` times the exact expected-return estimate, so ``inner_lr = ALPHA * n``
    is the reference's inner step. The outer PPO surrogate, at ratio 1 and without KL, has the
    gradient ``-1/n grad J``; so ``-n`` times our meta-gradient must be the reference's.
    """
    module = tiny_module(8).double()
    mdp = tree_mdp(0)
    thetas, expected = exact_maml(module, mdp, num_inner_steps)
    batches = [{"p": enumerated_batch(module, theta, mdp)} for theta in thetas]
    n = len(mdp["actions"])

    def scaled_meta_gradient(estimator):
        grads = package_meta_gradient(
            {"p": module}, batches, True, estimator=estimator, inner_lr=ALPHA * n, kl_coeff=0.0
        )["p"]
        return {k: -n * g for k, g in grads.items()}

    actual = scaled_meta_gradient("dice")
    assert expected.keys() == actual.keys()
    for k in expected:
        torch.testing.assert_close(actual[k], expected[k], rtol=1e-9, atol=1e-11)
    norm = sum(g.norm() ** 2 for g in expected.values()) ** 0.5
    for biased in ("pg", "lvc"):
        other = scaled_meta_gradient(biased)
        assert sum((other[k] - expected[k]).norm() ** 2 for k in expected) ** 0.5 > 0.05 * norm


def test_registry_rejects_unknown_estimator_listing_the_known_ones():
    assert {"pg", "lvc", "dice"} <= set(INNER_LOSSES)
    with pytest.raises(ValueError, match="'reinforce2'") as error:
        inner_loss(None, {}, {}, estimator="reinforce2")
    for name in INNER_LOSSES:
        assert repr(name) in str(error.value)


def test_inner_loss_looks_estimators_up_in_the_registry(monkeypatch):
    module = tiny_module(10)
    batch = fake_batch(module, 52)
    monkeypatch.setitem(INNER_LOSSES, "logp", lambda logp, batch: logp)
    params = dict(module.named_parameters())
    (loss,) = inner_loss(module, one_task(params), rows_of(batch), "logp")
    logp = ref_log_probs(module, params, batch)
    torch.testing.assert_close(loss, logp.gather(-1, batch[Columns.ACTIONS][:, None]).mean())


def test_modules_to_adapt_keeps_excluded_modules_at_meta_parameters():
    modules = {"a": tiny_module(4), "b": tiny_module(5)}
    theta = {mid: dict(m.named_parameters()) for mid, m in modules.items()}
    batch = {mid: fake_batch(modules[mid], 30 + i) for i, mid in enumerate(modules)}
    adapted, _ = inner_update(
        modules,
        repeat_params(theta, 1),
        stack_tasks([batch]),
        INNER_LR,
        create_graph=False,
        adapt_module_ids=["a"],
    )
    for name, p in theta["b"].items():
        assert torch.equal(adapted["b"][name][0], p)
    assert any(not torch.equal(adapted["a"][n][0], p) for n, p in theta["a"].items())


def test_ray_differentiable_learner_maps_first_modules_gradients_to_every_module():
    """Documents the Ray 2.60 bug our `inner_update` avoids (see DESIGN.md, section 4).

    `TorchDifferentiableLearner.compute_gradients` zips each module's parameters with the flat
    gradient list from its start, so module "b" receives module "a"'s gradients. If this test
    starts failing, Ray fixed the mapping.
    """
    modules = {"a": tiny_module(6), "b": tiny_module(7)}
    params = {mid: dict(m.named_parameters()) for mid, m in modules.items()}
    batch = {mid: fake_batch(modules[mid], 40 + i) for i, mid in enumerate(modules)}
    losses = {mid: ref_inner_loss(params[mid], modules[mid], batch[mid]) for mid in modules}
    ray_grads = TorchDifferentiableLearner.compute_gradients(None, losses, params)

    def true_grads(mid):
        grads = torch.autograd.grad(
            losses[mid], list(params[mid].values()), retain_graph=True, allow_unused=True
        )
        return dict(zip(params[mid], grads))

    true_a, true_b = true_grads("a"), true_grads("b")
    used = [n for n, g in true_b.items() if g is not None]  # the value head is unused
    assert used
    assert all(torch.allclose(ray_grads["b"][n], true_a[n]) for n in used)
    assert not any(torch.allclose(ray_grads["b"][n], true_b[n]) for n in used)
    # Ours maps by name: module "b" gets its own gradient.
    adapted, _ = inner_update(
        modules,
        repeat_params(params, 1),
        stack_tasks([batch]),
        1.0,
        create_graph=False,
        adapt_module_ids=["a", "b"],
    )
    for n in used:
        torch.testing.assert_close(params["b"][n] - adapted["b"][n][0], true_b[n])

"""The meta-gradient against an independent ``torch.func`` reference on a tiny policy.

The reference below shares nothing with the package but the module's forward pass: its own
categorical log-probabilities, KL, clipped surrogate, and ``torch.func.grad`` for the inner step
(nested ``grad`` transforms give the exact second-order term).
"""

from __future__ import annotations

import gymnasium as gym
import pytest
import torch
from ray.rllib.algorithms.ppo.torch.default_ppo_torch_rl_module import DefaultPPOTorchRLModule
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.torch.torch_differentiable_learner import TorchDifferentiableLearner
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES
from rllib_marl_meta.algorithms.maml.torch.maml_torch_learner import inner_update, task_meta_loss

INNER_LR = 0.5
CLIP = 0.2
KL_COEFF = 0.3
N = 64


def tiny_module(seed: int) -> DefaultPPOTorchRLModule:
    torch.manual_seed(seed)
    return RLModuleSpec(
        module_class=DefaultPPOTorchRLModule,
        observation_space=gym.spaces.Box(-1.0, 1.0, (3,)),
        action_space=gym.spaces.Discrete(4),
        model_config={"fcnet_hiddens": [8], "fcnet_activation": "tanh", "vf_share_layers": False},
    ).build()


def fake_batch(module, seed: int) -> dict[str, torch.Tensor]:
    """A batch as the learner connector builds it, sampled from ``module`` itself."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(N, 3, generator=g)
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
        ADVANTAGES: torch.randn(N, generator=g),
    }


# --- Independent reference -------------------------------------------------------------------


def ref_log_probs(module, params, batch):
    logits = torch.func.functional_call(module, params, (batch,))[Columns.ACTION_DIST_INPUTS]
    return torch.log_softmax(logits, dim=-1)


def ref_inner_loss(params, module, batch):
    logp = ref_log_probs(module, params, batch).gather(-1, batch[Columns.ACTIONS][:, None])
    return -(logp.squeeze(-1) * batch[ADVANTAGES]).mean()


def ref_adapt(params, module, batch, first_order):
    grads = torch.func.grad(ref_inner_loss)(params, module, batch)
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


def ref_meta_loss(params, module, batches, first_order):
    for batch in batches[:-1]:
        params = ref_adapt(params, module, batch, first_order)
    return ref_outer_loss(params, module, batches[-1])


def ref_meta_gradient(module, batches, first_order):
    params = {k: v.detach() for k, v in module.named_parameters()}
    return torch.func.grad(ref_meta_loss)(params, module, batches, first_order)


# --- Package under test ----------------------------------------------------------------------


def package_meta_gradient(modules, batches, second_order, adapt=None):
    theta = {mid: dict(m.named_parameters()) for mid, m in modules.items()}
    loss, _ = task_meta_loss(
        modules,
        theta,
        batches,
        inner_lr=INNER_LR,
        second_order=second_order,
        adapt_module_ids=adapt or list(modules),
        estimator="pg",
        clip_param=CLIP,
        kl_coeffs=dict.fromkeys(modules, KL_COEFF),
        entropy_coeff=0.0,
    )
    flat = [(mid, n, p) for mid, mp in theta.items() for n, p in mp.items()]
    grads = torch.autograd.grad(loss, [p for *_, p in flat], allow_unused=True)
    out: dict = {mid: {} for mid in modules}
    for (mid, n, p), g in zip(flat, grads):
        out[mid][n] = torch.zeros_like(p) if g is None else g
    return out


def assert_grads_close(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("num_inner_steps", [1, 2])
@pytest.mark.parametrize("order", ["second_order", "first_order"])
def test_meta_gradient_matches_torch_func_reference(order, num_inner_steps):
    module = tiny_module(0)
    batches = [fake_batch(module, seed) for seed in range(num_inner_steps + 1)]
    expected = ref_meta_gradient(module, batches, first_order=order == "first_order")
    actual = package_meta_gradient(
        {"p": module}, [{"p": b} for b in batches], second_order=order == "second_order"
    )["p"]
    assert any(g.abs().sum() > 0 for g in expected.values())
    assert_grads_close(actual, expected)


def test_first_and_second_order_differ_where_inner_loss_has_curvature():
    module = tiny_module(1)
    batches = [{"p": fake_batch(module, s)} for s in (10, 11)]
    second = package_meta_gradient({"p": module}, batches, second_order=True)["p"]
    first = package_meta_gradient({"p": module}, batches, second_order=False)["p"]
    diff = sum((second[n] - first[n]).norm() ** 2 for n in second) ** 0.5
    scale = sum(second[n].norm() ** 2 for n in second) ** 0.5
    assert diff > 1e-3 * scale, "the second-order term vanished: create_graph is not honoured"


def test_two_modules_match_reference_per_module():
    modules = {"a": tiny_module(2), "b": tiny_module(3)}
    batches = [
        {mid: fake_batch(modules[mid], 20 + 2 * s + i) for i, mid in enumerate(modules)}
        for s in range(2)
    ]
    actual = package_meta_gradient(modules, batches, second_order=True)
    for mid, module in modules.items():
        expected = ref_meta_gradient(module, [b[mid] for b in batches], first_order=False)
        assert_grads_close(actual[mid], expected)


def test_modules_to_adapt_keeps_excluded_modules_at_meta_parameters():
    modules = {"a": tiny_module(4), "b": tiny_module(5)}
    theta = {mid: dict(m.named_parameters()) for mid, m in modules.items()}
    batch = {mid: fake_batch(modules[mid], 30 + i) for i, mid in enumerate(modules)}
    adapted, _ = inner_update(
        modules, theta, batch, INNER_LR, create_graph=False, adapt_module_ids=["a"]
    )
    for name, p in theta["b"].items():
        assert torch.equal(adapted["b"][name], p)
    assert any(not torch.equal(adapted["a"][n], p) for n, p in theta["a"].items())


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
        modules, params, batch, 1.0, create_graph=False, adapt_module_ids=["a", "b"]
    )
    for n in used:
        torch.testing.assert_close(params["b"][n] - adapted["b"][n], true_b[n])

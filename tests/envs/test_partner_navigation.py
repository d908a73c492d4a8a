"""PartnerNavigation: the scripted partner plays its convention, which the learner can't see."""

from __future__ import annotations

import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec

from rllib_marl_meta.envs.partner_navigation import (
    LEARNER,
    PARTNER,
    PartnerNavigation,
    ScriptedPartnerModule,
)


def partner_module(env: PartnerNavigation) -> ScriptedPartnerModule:
    spec = RLModuleSpec(
        module_class=ScriptedPartnerModule,
        observation_space=env.observation_space(PARTNER),
        action_space=env.action_space(PARTNER),
    )
    return spec.build()


def play(env: PartnerNavigation, landmark, delay_steps: int = 0) -> tuple[list, float]:
    """An episode with a still learner and the scripted partner; learner observations and the
    partner's final distance to ``landmark``."""
    module = partner_module(env)
    obs, _ = env.reset(seed=0, options={"task": {"landmark": np.asarray(landmark)}})
    learner_obs = [obs[LEARNER]]
    while env.agents:
        with torch.no_grad():
            inputs = module.forward_inference({Columns.OBS: torch.as_tensor(obs[PARTNER])[None]})
        action = inputs[Columns.ACTION_DIST_INPUTS][0, :2].numpy()
        obs, *_ = env.step({LEARNER: np.zeros(2), PARTNER: action})
        if env.agents:
            learner_obs.append(obs[LEARNER])
    return learner_obs, float(np.linalg.norm(obs[PARTNER][4:6]))


def test_scripted_partner_reaches_its_landmark_whichever_it_is():
    for landmark in ([0.6, 0.0], [-0.5, 0.4], [0.1, -0.6]):
        _, distance = play(PartnerNavigation({"horizon": 30}), landmark)
        assert distance < 0.05, (landmark, distance)


def test_learner_cannot_tell_partners_apart_before_the_partner_moves():
    env = PartnerNavigation({"horizon": 20, "partner_delay": 5})
    seen_a, _ = play(env, [0.6, 0.0])
    seen_b, _ = play(env, [-0.6, 0.0])
    # Same observations while the partner waits (reset + 5 steps), different afterwards.
    np.testing.assert_array_equal(np.stack(seen_a[:6]), np.stack(seen_b[:6]))
    assert not np.allclose(seen_a[10], seen_b[10])
    hidden = PartnerNavigation({"observe_partner": False})
    assert hidden.observation_space(LEARNER).shape == (4,)


def test_team_reward_is_both_agents_distance_to_the_partners_landmark():
    env = PartnerNavigation({"spawn_range": 0.0, "partner_delay": 0})
    env.reset(seed=0, options={"task": {"landmark": np.array([0.3, 0.4])}})
    _, rewards, *_ = env.step({LEARNER: np.zeros(2), PARTNER: np.zeros(2)})
    assert rewards == {LEARNER: -1.0, PARTNER: -1.0}  # Both at the origin, 0.5 away.

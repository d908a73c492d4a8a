"""Bad input through the Python API gets an early, clear error; nothing is silently wrong.

Each case names the exception type and a pattern that the message must match: the setting (or
module, env call, task) and the allowed values or the fix. CLI and checkpoint cases are in
``tests/test_bad_input_cli.py``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from ray.rllib.utils.error import EnvError

import rllib_marl_meta  # noqa: F401  (registers the built-in envs)
from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.maml.sampling import TaskSamplingError
from rllib_marl_meta.algorithms.rl2 import RL2Config
from rllib_marl_meta.tasks import TaskAPIError, draw_tasks, set_tasks
from tests.faulty_envs import (
    NonFiniteEnv,
    OldContractEnv,
    RaisingEnv,
    WrongShapeEnv,
)

MINUS_ONE = r"-1 as its DEPRECATED_VALUE"

# (config class, method, settings, message pattern). Each value is out of range; the error
# must come where it is set, before `build_algo()` could copy the config and replace a -1.
SETTING_CASES = [
    (MAMLConfig, "training", {"inner_adaptation_steps": -1}, r"`inner_adaptation_steps`.*>= 1"),
    (MAMLConfig, "training", {"meta_batch_size": -1}, MINUS_ONE),
    (MAMLConfig, "training", {"maml_optimizer_steps": -1}, r"`maml_optimizer_steps`.*>= 1"),
    (MAMLConfig, "training", {"episodes_per_task": -1}, r"`episodes_per_task`.*>= 1 or None"),
    (MAMLConfig, "training", {"env_steps_per_task": 0}, r"`env_steps_per_task`.*>= 1"),
    (MAMLConfig, "training", {"max_task_resamples": -1}, r"training\(max_task_resamples"),
    (MAMLConfig, "training", {"gamma": 2}, r"`gamma`.*in \[0, 1\]"),
    (MAMLConfig, "training", {"gamma": 5.0}, r"`gamma`.*in \[0, 1\]"),
    (MAMLConfig, "training", {"clip_param": -0.2}, r"`clip_param`.*> 0"),
    (MAMLConfig, "training", {"lr": -1e-3}, r"`lr`.*> 0.*schedule"),
    (MAMLConfig, "training", {"kl_coeff": -1.0}, r"`kl_coeff`.*>= 0"),
    (MAMLConfig, "training", {"kl_target": 0.0}, r"`kl_target`.*> 0"),
    (MAMLConfig, "training", {"lambda_": 1.5}, r"`lambda_`.*in \[0, 1\]"),
    (MAMLConfig, "training", {"inner_lr": math.inf}, r"`inner_lr`.*finite number > 0"),
    (MAMLConfig, "training", {"inner_lr": math.nan}, r"`inner_lr`.*finite"),
    (MAMLConfig, "training", {"vf_loss_coeff": -0.5}, r"`vf_loss_coeff`.*>= 0"),
    (MAMLConfig, "training", {"entropy_coeff": math.nan}, r"`entropy_coeff`"),
    (MAMLConfig, "training", {"use_gae": "yes"}, r"`use_gae`.*True or False"),
    (MAMLConfig, "training", {"meta_gradient": "third_order"}, r"'second_order', 'first_order'"),
    (MAMLConfig, "training", {"inner_loss": "nope"}, r"`inner_loss`.*one of 'pg'"),
    (MAMLConfig, "training", {"baseline": "mean"}, r"`baseline`.*'linear', 'value'"),
    (MAMLConfig, "training", {"modules_to_adapt": "agent_0"}, r"not 'agent_0'"),
    (MAMLConfig, "training", {"grad_clip": -1.0}, r"`grad_clip`"),
    (MAMLConfig, "env_runners", {"num_env_runners": -1}, r"env_runners\(num_env_runners"),
    (MAMLConfig, "env_runners", {"num_envs_per_env_runner": 0}, r"`num_envs_per_env_runner`"),
    (MAMLConfig, "learners", {"num_learners": -1}, MINUS_ONE),
    (MAMLConfig, "debugging", {"seed": -1}, r"`seed`.*debugging\(seed"),
    (RL2Config, "training", {"episodes_per_trial": -1}, r"`episodes_per_trial`.*" + MINUS_ONE),
    (RL2Config, "training", {"cell_size": -1}, r"`cell_size`.*>= 1"),
    (RL2Config, "training", {"max_seq_len": 0}, r"`max_seq_len`.*>= 1"),
    (RL2Config, "training", {"rnn_cell": "rnn"}, r"`rnn_cell`.*one of 'lstm', 'gru'"),
    (RL2Config, "training", {"gamma": 1.5}, r"`gamma`.*in \[0, 1\]"),
    (RL2Config, "training", {"lambda_": -0.1}, r"`lambda_`"),
    (RL2Config, "training", {"clip_param": 0.0}, r"`clip_param`.*> 0"),
    (RL2Config, "training", {"lr": 0.0}, r"`lr`.*> 0"),
    (RL2Config, "training", {"num_epochs": 0}, r"`num_epochs`.*>= 1"),
    (RL2Config, "training", {"entropy_coeff": -0.01}, r"`entropy_coeff`.*>= 0"),
    (RL2Config, "training", {"kl_target": -1}, MINUS_ONE),
    (RL2Config, "env_runners", {"num_env_runners": -1}, r"`num_env_runners`.*>= 0"),
]


@pytest.mark.parametrize(
    ("config_cls", "method", "settings", "pattern"),
    SETTING_CASES,
    ids=[
        f"{c.__name__}.{m}({next(iter(s))}={next(iter(s.values()))})"
        for c, m, s, _ in SETTING_CASES
    ],
)
def test_out_of_range_setting_fails_where_it_is_set(config_cls, method, settings, pattern):
    config = config_cls()
    with pytest.raises(ValueError, match=pattern) as error:
        getattr(config, method)(**settings)
    name = next(iter(settings))
    assert f"`{name}`" in str(error.value)
    assert getattr(config, name) == getattr(config_cls(), name)  # The bad value was not kept.


@pytest.mark.parametrize("config_cls", [MAMLConfig, RL2Config])
def test_framework_other_than_torch_is_rejected_before_rllib_asks_for_tensorflow(config_cls):
    with pytest.raises(ValueError, match=r"torch only.*config\.framework\('torch'\)"):
        config_cls().framework("tf2")


@pytest.mark.parametrize(
    ("config_cls", "key"), [(MAMLConfig, "inner_adaptation_steps"), (RL2Config, "cell_size")]
)
def test_update_from_dict_and_assignment_are_checked_too(config_cls, key):
    """The dict path (Tune, the CLI) and plain assignment cannot slip a -1 past the check."""
    with pytest.raises(ValueError, match=MINUS_ONE):
        config_cls().update_from_dict({key: -1})
    config = config_cls()
    with pytest.raises(ValueError, match=f"`{key}`"):
        setattr(config, key, -1)


def test_tune_search_spaces_are_accepted_where_set_and_checked_in_validate():
    from ray import tune

    config = MAMLConfig().environment("PointNavigation2D").training(lr=tune.grid_search([1e-3]))
    assert config.lr == {"grid_search": [1e-3]}
    config.lr = 1e-3
    config.validate()
    config.__dict__["gamma"] = 3.0  # As a Tune trial would resolve a bad sample.
    with pytest.raises(ValueError, match=r"`gamma`.*in \[0, 1\]"):
        config.validate()


# --- Checks that need the env: validate() probes one env on the driver ----------------------


def _per_agent(config: MAMLConfig) -> MAMLConfig:
    return config.multi_agent(
        policies={"agent_0", "agent_1"}, policy_mapping_fn=lambda agent_id, *a, **k: agent_id
    )


VALIDATE_CASES = {
    "modules_to_adapt names no module (single agent)": (
        lambda: MAMLConfig().environment("PointNavigation2D").training(modules_to_adapt=["ghost"]),
        r"`modules_to_adapt` names modules \['ghost'\].*modules are \['default_policy'\]",
    ),
    "modules_to_adapt names no module (multi-agent)": (
        lambda: _per_agent(MAMLConfig().environment("CooperativeNavigation")).training(
            modules_to_adapt=["agent_0", "agent_9"]
        ),
        r"\['agent_9'\] that do not exist; the modules are \['agent_0', 'agent_1'\]",
    ),
    "modules_to_adapt names an untrained module": (
        lambda: (
            _per_agent(MAMLConfig().environment("CooperativeNavigation"))
            .multi_agent(policies_to_train=["agent_0"])
            .training(modules_to_adapt=["agent_1"])
        ),
        r"\['agent_1'\] that are not in `policies_to_train`",
    ),
    "MAML on a multi-agent env without multi_agent()": (
        lambda: MAMLConfig().environment("CooperativeNavigation"),
        r"MAML: the env is multi-agent .*no multi-agent setup.*config\.multi_agent\(",
    ),
    "policy_mapping_fn maps to a module that does not exist": (
        lambda: (
            MAMLConfig()
            .environment("CooperativeNavigation")
            .multi_agent(policies={"shared"}, policy_mapping_fn=lambda aid, *a, **k: "sharde")
        ),
        r"maps agent 'agent_0' to module 'sharde', which is not one of the policies \['shared'\]",
    ),
    "RL2 policy_mapping_fn maps to a module that does not exist": (
        lambda: (
            RL2Config()
            .environment("CooperativeNavigation")
            .multi_agent(policies={"shared"}, policy_mapping_fn=lambda aid, *a, **k: "nobody")
        ),
        r"RL2 on env CooperativeNavigation: .*module 'nobody'",
    ),
    "observation of the wrong shape (MAML)": (
        lambda: MAMLConfig().environment(WrongShapeEnv),
        r"reset\(\) returns observations .*shape \(3,\).*\(2,\)",
    ),
    "observation of the wrong shape (RL2)": (
        lambda: RL2Config().environment(WrongShapeEnv),
        r"RL2 on env .*WrongShapeEnv.*shape \(3,\)",
    ),
    "env that does not exist": (
        lambda: MAMLConfig().environment("NoSuchEnv-v0"),
        r"'NoSuchEnv-v0'\) is:\na\) Not a supported or an installed environment",
    ),
}
# RLlib's own error for an env it cannot create names the env and the ways to provide one.
ERROR_TYPES = {"env that does not exist": EnvError}


@pytest.mark.parametrize("case", list(VALIDATE_CASES))
def test_validate_names_the_problem_and_the_fix(case):
    make_config, pattern = VALIDATE_CASES[case]
    with pytest.raises(ERROR_TYPES.get(case, ValueError), match=pattern):
        make_config().validate()


# --- Tasks are opaque -------------------------------------------------------------------------


def test_a_tuple_task_is_never_unpacked_over_sub_envs():
    from gymnasium.vector import SyncVectorEnv

    vec = SyncVectorEnv([OldContractEnv, OldContractEnv])
    with pytest.raises(TypeError, match=r"one task per sub-env.*set_task_on_all"):
        set_tasks(vec, (0.18, -0.31))


def test_draw_tasks_rejects_a_wrong_number_of_tasks():
    class Short(OldContractEnv):
        def sample_tasks(self, n_tasks):
            return [(0.0, 0.0)]

    with pytest.raises(TaskAPIError, match=r"Short.sample_tasks\(3\) must return a list of 3"):
        draw_tasks(Short(), 3, seed=0)


def test_draw_tasks_seeds_old_contract_envs_and_restores_the_global_rng():
    env = OldContractEnv()
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = draw_tasks(env, 4, seed=7)
    assert np.random.random() == expected_next  # The global RNG is left as it was.
    assert draw_tasks(env, 4, seed=7) == first
    assert draw_tasks(env, 4, seed=8) != first
    assert all(isinstance(t, tuple) and len(t) == 2 for t in first)


# --- Runtime: non-finite data and failing envs (tiny runs on the shared Ray instance) ---------


def _tiny_maml(env, env_config=None, **training) -> MAMLConfig:
    settings = dict(meta_batch_size=1, episodes_per_task=1, maml_optimizer_steps=1)
    settings.update(training)
    return (
        MAMLConfig()
        .environment(env, env_config={"horizon": 5, **(env_config or {})})
        .rl_module(model_config={"fcnet_hiddens": [8]})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=1)
        .debugging(seed=0)
        .training(**settings)
    )


@pytest.mark.parametrize(
    ("what", "from_episode", "pattern"),
    [
        ("reward", 1, r"Non-finite reward \(nan\).*task 0 .*pre-adaptation.*env step 3"),
        ("reward", 2, r"Non-finite reward \(nan\).*task 0 .*post-adaptation .*inner step 1"),
        ("observation", 1, r"Non-finite observation \(inf\).*task 0 .*pre-adaptation"),
    ],
)
def test_non_finite_env_output_names_task_and_step(ray_session, what, from_episode, pattern):
    config = _tiny_maml(NonFiniteEnv, {"what": what, "from_episode": from_episode})
    algo = config.build_algo()
    try:
        with pytest.raises(ValueError, match=pattern):
            algo.train()
    finally:
        algo.stop()


@pytest.mark.parametrize("num_env_runners", [0, 1])
def test_env_error_text_reaches_the_user_without_fault_tolerance(ray_session, num_env_runners):
    config = (
        _tiny_maml(RaisingEnv)
        .env_runners(num_env_runners=num_env_runners)
        .fault_tolerance(restart_failed_env_runners=False)
    )
    algo = config.build_algo()
    try:
        with pytest.raises(
            TaskSamplingError,
            match=r"sampling \(env or module\) raised on EnvRunner \d: "
            r"KeyError: 'boom from the env step' \(.*faulty_envs.py:\d+ in step\)",
        ):
            algo.train()
    finally:
        algo.stop()


def test_env_error_text_reaches_the_user_when_retries_run_out(ray_session):
    config = _tiny_maml(RaisingEnv, max_task_resamples=1).fault_tolerance(
        restart_failed_env_runners=True
    )
    algo = config.build_algo()
    try:
        with pytest.raises(
            TaskSamplingError, match=r"after 1 re-dispatches.*KeyError: 'boom from the env step'"
        ):
            algo.train()
    finally:
        algo.stop()


def test_rl2_non_finite_reward_names_the_inner_episode_and_task():
    from rllib_marl_meta.algorithms.rl2.trial_wrapper import make_trial_env

    # The trial's reset seeds the inner env with a reset of its own: inner episode 2 is reset 3.
    env = make_trial_env(NonFiniteEnv({"horizon": 5, "what": "reward", "from_episode": 3}), 3)
    env.reset(seed=0)
    for _ in range(5):  # Inner episode 1 is finite.
        env.step(env.action_space.sample())
    env.step(env.action_space.sample())
    env.step(env.action_space.sample())
    with pytest.raises(ValueError, match=r"RL2: non-finite reward \(nan\).*inner episode 2.*goal"):
        env.step(env.action_space.sample())


@pytest.mark.parametrize(
    ("algorithm", "kwargs", "pattern"),
    [
        ("MAML", {"num_tasks": 0}, r"MAML\.meta_test: `num_tasks` must be an integer >= 1; got 0"),
        ("MAML", {"seed": -3}, r"`seed` must be an integer >= 0; got -3"),
        ("MAML", {"steps": 0}, r"`steps` must be an integer >= 1; got 0"),
        ("RL2", {"num_tasks": 0}, r"RL2\.meta_test: `num_tasks` must be an integer >= 1; got 0"),
        ("RL2", {"steps": 0}, r"`steps` must be an integer >= 1; got 0"),
        ("RL2", {"explore": "yes"}, r"`explore` must be"),
    ],
)
def test_meta_test_arguments_are_checked(ray_session, algorithm, kwargs, pattern):
    if algorithm == "MAML":
        config = _tiny_maml("PointNavigation2D")
    else:
        config = RL2Config().environment("BernoulliBandit").training(cell_size=4)
    algo = config.env_runners(num_env_runners=0).build_algo()
    try:
        with pytest.raises(ValueError, match=pattern):
            algo.meta_test(**kwargs)
    finally:
        algo.stop()

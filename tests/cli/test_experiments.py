"""The YAML experiment loader: format, overrides (CLI > file), search spaces, multi-agent, errors.

No Ray needed: everything here is checked before Ray starts.
"""

from __future__ import annotations

import textwrap

import pytest
from ray.tune.search.sample import Categorical, Float, Integer

from rllib_marl_meta.experiments import (
    ExperimentError,
    Overrides,
    PerAgentPolicyMapping,
    SharedPolicyMapping,
    TablePolicyMapping,
    check_config_keys,
    deep_merge,
    load_experiments,
    parse_override,
)

BASE = """
exp:
  env: PointNavigation2D
  run: MAML
  stop:
    episode_return_mean_adapt_1: -10.0
    env_runners:
      num_env_steps_sampled_lifetime: 1e6
  config:
    meta_batch_size: 20
    inner_lr: 0.1
    env_config: {horizon: 100, action_bound: 0.1}
    model_config: {fcnet_hiddens: [64, 64]}
"""


def write(tmp_path, text: str, name: str = "exp.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_file_is_read_into_a_tune_param_space(tmp_path):
    (exp,) = load_experiments(write(tmp_path, BASE))
    assert exp.name == "exp" and exp.run == "MAML" and exp.env == "PointNavigation2D"
    assert exp.param_space["meta_batch_size"] == 20
    # `model_config` becomes the dict key AlgorithmConfig.update_from_dict understands.
    assert exp.param_space["_model_config"] == {"fcnet_hiddens": [64, 64]}
    # Nested stop criteria are flattened as Tune wants them; 1e6 is a number, not a string.
    assert exp.stop == {
        "episode_return_mean_adapt_1": -10.0,
        "env_runners/num_env_steps_sampled_lifetime": 1e6,
    }
    config = exp.algorithm_config()
    assert config.meta_batch_size == 20
    assert config.model_config["fcnet_hiddens"] == [64, 64]
    assert config.env == "PointNavigation2D"
    assert exp.checkpoint_at_end is True and exp.checkpoint_freq == 0 and exp.num_samples == 1


def test_cli_overrides_take_precedence_over_the_file(tmp_path):
    overrides = Overrides(
        config=parse_override(
            '{"meta_batch_size": 3, "env_config": {"horizon": 10}, "env": "CartPoleMass"}',
            "--config",
        ),
        stop=parse_override("training_iteration: 1\nepisode_return_mean_adapt_1: null", "--stop"),
        num_samples=2,
        checkpoint_freq=5,
        checkpoint_at_end=False,
        storage_path="/tmp/somewhere",
    )
    # Not validated: CartPoleMass has no `horizon` or `action_bound` (validation rejects them,
    # see tests/test_bad_input_cli.py); this test is about how the settings merge.
    (exp,) = load_experiments(write(tmp_path, BASE), overrides, validate=False)
    space = exp.param_space
    assert space["meta_batch_size"] == 3  # CLI wins...
    assert space["inner_lr"] == 0.1  # ...file keys the CLI doesn't name stay...
    assert space["env_config"] == {"horizon": 10, "action_bound": 0.1}  # ...merged deep.
    assert space["env"] == "CartPoleMass"  # CLI env beats the file's top-level env.
    # Stop criteria merge too; a null removes one of the file's.
    assert exp.stop == {
        "training_iteration": 1,
        "env_runners/num_env_steps_sampled_lifetime": 1e6,
    }
    assert (exp.num_samples, exp.checkpoint_freq, exp.checkpoint_at_end) == (2, 5, False)
    assert exp.storage_path == "/tmp/somewhere"


def test_experiment_level_settings_apply_when_the_cli_names_none(tmp_path):
    text = BASE + "  num_samples: 3\n  checkpoint_freq: 2\n  checkpoint_at_end: false\n"
    (exp,) = load_experiments(write(tmp_path, text))
    assert (exp.num_samples, exp.checkpoint_freq, exp.checkpoint_at_end) == (3, 2, False)
    (exp,) = load_experiments(write(tmp_path, text), Overrides(num_samples=1))
    assert exp.num_samples == 1


def test_deep_merge_replaces_search_spaces_instead_of_merging_into_them():
    base = {"a": {"grid_search": [1, 2]}, "b": {"x": 1, "y": 2}}
    merged = deep_merge(base, {"a": {"choice": [3]}, "b": {"y": 3}})
    assert merged == {"a": {"choice": [3]}, "b": {"x": 1, "y": 3}}
    assert base["b"] == {"x": 1, "y": 2}  # inputs unchanged


def test_search_spaces_become_tune_domains(tmp_path):
    text = BASE.replace(
        "inner_lr: 0.1",
        "inner_lr: {grid_search: [0.05, 0.1]}\n"
        "    lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
        "    clip_param: {uniform: [0.1, 0.3]}\n"
        "    maml_optimizer_steps: {randint: [1, 4]}\n"
        "    meta_gradient: {choice: [first_order, second_order]}",
    )
    (exp,) = load_experiments(write(tmp_path, text))
    space = exp.param_space
    assert space["inner_lr"] == {"grid_search": [0.05, 0.1]}
    assert isinstance(space["lr"], Float) and space["lr"].lower == 1e-4
    assert isinstance(space["clip_param"], Float)
    assert isinstance(space["maml_optimizer_steps"], Integer)
    assert isinstance(space["meta_gradient"], Categorical)
    sample = exp.sample_config()
    assert sample["inner_lr"] == 0.05 and sample["meta_gradient"] == "first_order"


def test_every_grid_value_is_validated(tmp_path):
    text = BASE.replace("inner_lr: 0.1", "meta_gradient: {grid_search: [first_order, bogus]}")
    with pytest.raises(ExperimentError, match="bogus"):
        load_experiments(write(tmp_path, text))


@pytest.mark.parametrize(
    "space, message",
    [
        ("{uniform: [1]}", r"\[low, high\]"),
        ("{choice: []}", "non-empty list"),
        ("{grid_search: 3}", "non-empty list"),
        ("{quniform: [0, 1, a]}", r"\[low, high, q\]"),
    ],
)
def test_malformed_search_spaces_are_rejected(tmp_path, space, message):
    text = BASE.replace("inner_lr: 0.1", f"inner_lr: {space}")
    with pytest.raises(ExperimentError, match=message):
        load_experiments(write(tmp_path, text))


def test_multi_agent_shared_convention(tmp_path):
    text = """
    coop:
      env: CooperativeNavigation
      run: MAML
      stop: {training_iteration: 1}
      config:
        env_config: {horizon: 10}
        multi_agent: {policy_mapping: shared, policies: [team]}
    """
    (exp,) = load_experiments(write(tmp_path, text))
    settings = exp.param_space["multiagent"]
    assert settings["policies"] == ["team"]
    assert isinstance(settings["policy_mapping_fn"], SharedPolicyMapping)
    config = exp.algorithm_config()
    assert set(config.policies) == {"team"}
    assert config.policy_mapping_fn("agent_1", None) == "team"


def test_multi_agent_per_agent_convention_reads_agent_ids_from_the_env(tmp_path):
    text = """
    coop:
      env: CooperativeNavigation
      run: MAML
      stop: {training_iteration: 1}
      config:
        env_config: {horizon: 10, num_agents: 3}
        multi_agent: {policy_mapping: per_agent}
    """
    (exp,) = load_experiments(write(tmp_path, text))
    settings = exp.param_space["multiagent"]
    assert settings["policies"] == ["agent_0", "agent_1", "agent_2"]
    assert isinstance(settings["policy_mapping_fn"], PerAgentPolicyMapping)
    assert settings["policy_mapping_fn"]("agent_2") == "agent_2"


@pytest.mark.parametrize("num_agents", ["{grid_search: [2, 3]}", "{choice: [3, 2]}"])
def test_multi_agent_per_agent_has_a_policy_for_the_agents_of_every_sample(tmp_path, num_agents):
    """Every trial's agents have a policy, whichever number of agents it draws."""
    text = f"""
    coop:
      env: CooperativeNavigation
      run: MAML
      stop: {{training_iteration: 1}}
      config:
        env_config: {{horizon: 10, num_agents: {num_agents}}}
        multi_agent: {{policy_mapping: per_agent}}
    """
    (exp,) = load_experiments(write(tmp_path, text))
    assert exp.param_space["multiagent"]["policies"] == ["agent_0", "agent_1", "agent_2"]


def test_multi_agent_per_agent_reports_an_env_that_cannot_be_created(tmp_path):
    """The env's own message names the key and the allowed values."""
    text = """
    coop:
      env: CooperativeNavigation
      run: MAML
      config:
        env_config: {num_agents: x}
        multi_agent: {policy_mapping: per_agent}
    """
    message = (
        r"Cannot create env 'CooperativeNavigation' to read its agent ids: CooperativeNavigation: "
        r"env_config key 'num_agents' must be an integer >= 1, got 'x'\."
    )
    with pytest.raises(ExperimentError, match=message):
        load_experiments(write(tmp_path, text))


def test_multi_agent_table_convention(tmp_path):
    text = """
    coop:
      env: CooperativeNavigation
      run: MAML
      stop: {training_iteration: 1}
      config:
        env_config: {horizon: 10}
        multi_agent: {policy_mapping: {agent_0: a, agent_1: b}}
    """
    (exp,) = load_experiments(write(tmp_path, text))
    fn = exp.param_space["multiagent"]["policy_mapping_fn"]
    assert isinstance(fn, TablePolicyMapping)
    assert exp.param_space["multiagent"]["policies"] == ["a", "b"]
    assert fn("agent_1") == "b"


@pytest.mark.parametrize(
    "multi_agent, message",
    [
        ("{policy_mapping: shared, policies: [a, b]}", "maps all agents to one policy"),
        ("{policy_mapping: per_agent, policies: [agent_0]}", r"agents \['agent_1'\]"),
        ("{policy_mapping: round_robin}", "must be 'shared', 'per_agent' or a mapping"),
        ("{policy_maping: shared}", "Did you mean 'policy_mapping'"),
    ],
)
def test_bad_multi_agent_settings_are_rejected(tmp_path, multi_agent, message):
    text = f"""
    coop:
      env: CooperativeNavigation
      run: MAML
      config:
        multi_agent: {multi_agent}
    """
    with pytest.raises(ExperimentError, match=message):
        load_experiments(write(tmp_path, text))


@pytest.mark.parametrize(
    "text, message",
    [
        (BASE.replace("run: MAML", "run: MAMl"), r"Unknown algorithm.*'MAMl'.*Did you mean 'MAML'"),
        (
            BASE.replace("env: PointNavigation2D", "env: PointNav2D"),
            r"Unknown env 'PointNav2D'.*Did you mean 'PointNavigation2D'",
        ),
        (
            BASE.replace("inner_lr: 0.1", "inner_lrr: 0.1"),
            r"Unknown config key 'inner_lrr' for MAML.*Did you mean 'inner_lr'",
        ),
        (
            BASE.replace("meta_batch_size: 20", "meta_batch_sise: 20"),
            "Did you mean 'meta_batch_size'",
        ),
        (BASE.replace("inner_lr: 0.1", "model: {fcnet_hiddens: [8]}"), "use 'model_config'"),
        (
            BASE.replace("model_config: {fcnet_hiddens: [64, 64]}", "model_config: [1]"),
            "`model_config` in experiment 'exp' must be a mapping",
        ),
        (BASE.replace("meta_batch_size: 20", "meta_batch_size: 0"), "meta_batch_size"),
        (BASE.replace("  run: MAML\n", ""), "Missing `run:`"),
        (BASE.replace("  stop:", "  stopp:"), "Unknown key 'stopp'.*Did you mean 'stop'"),
        ("just a string", "must map experiment names"),
        ("", "holds nothing"),
        ("exp:\n  env: [1, 2\n", r"Malformed YAML .* at line 3, column 1"),
    ],
)
def test_bad_files_raise_one_line_errors(tmp_path, text, message):
    with pytest.raises(ExperimentError, match=message) as info:
        load_experiments(write(tmp_path, text))
    assert "\n" not in str(info.value)


def test_a_builtin_env_without_its_extra_is_bad_input(tmp_path, monkeypatch):
    """Reported before Ray starts, with the extra to install (not as a failed trial)."""
    import rllib_marl_meta.envs as envs

    def missing(name):
        raise ImportError(f"Env '{name}' needs the optional 'mujoco' dependencies: pip install x.")

    monkeypatch.setattr(envs, "env_class", missing)
    text = BASE.replace("env: PointNavigation2D", "env: HalfCheetahVelocity").replace(
        "run: MAML", "run: PPO"
    )
    text = text.replace("    meta_batch_size: 20\n    inner_lr: 0.1\n", "")
    message = (
        r"^Cannot use env 'HalfCheetahVelocity' in experiment 'exp': Env 'HalfCheetahVelocity' "
        r"needs the optional 'mujoco' dependencies: pip install x\.$"
    )
    with pytest.raises(ExperimentError, match=message):
        load_experiments(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(ExperimentError, match="Experiment file not found"):
        load_experiments(tmp_path / "nope.yaml")


def test_gym_ids_and_rllib_algorithms_are_accepted(tmp_path):
    text = """
    ppo:
      env: CartPole-v1
      run: PPO
      stop: {training_iteration: 1}
      config: {lr: 0.001, model_config: {fcnet_hiddens: [8]}}
    """
    (exp,) = load_experiments(write(tmp_path, text))
    assert exp.algo_class.__name__ == "PPO"
    assert exp.algorithm_config().lr == 0.001


def test_old_config_keys_that_rllib_translates_are_accepted():
    from ray.rllib.algorithms.ppo import PPO

    check_config_keys(PPO, {"lambda": 0.9, "num_workers": 1, "framework": "torch"})
    with pytest.raises(ExperimentError, match="Did you mean 'lambda_'"):
        check_config_keys(PPO, {"lamda": 0.9})


def test_override_must_be_a_mapping():
    with pytest.raises(ExperimentError, match="--config takes a JSON or YAML mapping"):
        parse_override("[1, 2]", "--config")
    assert parse_override('{"a": {"b": 1}}', "--config") == {"a": {"b": 1}}
    assert parse_override("a: 1", "--stop") == {"a": 1}


def test_variants_enumerate_grids_and_choices_and_sample_other_domains():
    from ray import tune

    from rllib_marl_meta.experiments import MAX_VALIDATED_VARIANTS, variants

    space = {
        "a": tune.grid_search([1, 2]),
        "b": {"c": tune.choice(["x", "y"])},
        "lr": tune.uniform(0.1, 0.2),
        "fixed": [1, 2],
    }
    samples = variants(space)
    # Every grid value and category is checked once; combinations that add none are skipped.
    assert [(s["a"], s["b"]["c"]) for s in samples] == [(1, "x"), (2, "x"), (1, "y")]
    assert all(0.1 <= s["lr"] <= 0.2 and s["fixed"] == [1, 2] for s in samples)
    assert (samples[0]["a"], samples[0]["b"]["c"]) == (1, "x")  # First values first.
    assert isinstance(space["b"]["c"], Categorical)  # The param space itself is unchanged.
    many = variants({"a": tune.grid_search(list(range(100)))})
    assert len(many) == MAX_VALIDATED_VARIANTS
    # A product larger than the limit still has each value of both grids checked.
    wide = variants({"a": tune.grid_search(list(range(15))), "b": tune.grid_search([0, 1, 2])})
    assert {s["a"] for s in wide} == set(range(15)) and {s["b"] for s in wide} == {0, 1, 2}
    assert len(wide) == 17

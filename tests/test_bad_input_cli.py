"""Bad input gives exit code 2 and one line naming the key or file and the fix (issue #11).

The CLI runs in process (``cli.main``, the code path of the scripts). Each case asserts the
specific message, so a case that fails for another reason (or not at all) is caught.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rllib_marl_meta import cli
from rllib_marl_meta.envs import BUILTIN_ENVS, EXTRA_MODULES, make_env

GOOD = """
exp:
  env: PointNavigation2D
  run: MAML
  stop: {training_iteration: 1}
  config:
    meta_batch_size: 2
    env_config: {horizon: 10}
"""
ERROR = "rllib-marl-meta: error: "


# --- A checkpoint to break ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def maml_checkpoint(ray_session, tmp_path_factory) -> Path:
    """One tiny MAML checkpoint (untrained: every file is written all the same)."""
    from tests.algorithms.maml.conftest import small_maml_config

    path = tmp_path_factory.mktemp("maml") / "checkpoint"
    config = small_maml_config(meta_batch_size=2, episodes_per_task=1, maml_optimizer_steps=1)
    algo = config.env_runners(num_env_runners=0).build_algo()
    try:
        algo.save_to_path(str(path))
    finally:
        algo.stop()
    return path


def truncate(relative: str) -> Callable[[Path], None]:
    """Cuts a file of the checkpoint to half its size, as an interrupted copy would."""

    def apply(checkpoint: Path) -> None:
        file = checkpoint / relative
        data = file.read_bytes()
        assert len(data) > 2, f"{file} is too small to truncate"
        file.write_bytes(data[: len(data) // 2])

    return apply


def delete(relative: str) -> Callable[[Path], None]:
    def apply(checkpoint: Path) -> None:
        (checkpoint / relative).unlink()

    return apply


MODULE_STATE = "learner_group/learner/rl_module/default_policy/module_state.pkl"
ADVICE = r"use another checkpoint"


# --- The cases -----------------------------------------------------------------------------------


@dataclass
class Case:
    """argv ({file}: the YAML file, {ckpt}: a copy of the checkpoint) -> exit 2 and a message."""

    argv: list[str]
    message: str  # A regex the one line on stderr must match.
    yaml: str | None = None
    checkpoint: Callable[[Path], None] | None = None
    extra: list[str] = field(default_factory=list)


def with_config(line: str, yaml: str = GOOD) -> str:
    return yaml.replace("    env_config: {horizon: 10}\n", line)


TRAIN = ["train", "-f", "{file}"]
PLACEHOLDERS = ("{file}", "{ckpt}", "{missing}")
EVALUATE = ["evaluate", "{ckpt}"]
CASES = {
    # Stop criteria.
    "stop null removes the only criterion": Case(
        [*TRAIN, "--stop", '{"training_iteration": null}'],
        r"No stop criterion in experiment 'exp' \(--stop removed 'training_iteration'\): its "
        r"trials would never stop\. Add one .*--stop '\{\"training_iteration\": 100\}'",
        yaml=GOOD,
    ),
    "stop NaN in the file": Case(
        TRAIN,
        r"Stop criterion 'training_iteration' in experiment 'exp' must be a finite number, "
        r"got nan.*e\.g\. --stop '\{\"training_iteration\": 100\}'",
        yaml=GOOD.replace("{training_iteration: 1}", "{training_iteration: .nan}"),
    ),
    "stop inf on the command line": Case(
        [*TRAIN, "--stop", '{"env_runners": {"num_env_steps_sampled_lifetime": Infinity}}'],
        r"Stop criterion 'env_runners/num_env_steps_sampled_lifetime' in experiment 'exp' must "
        r"be a finite number, got inf",
        yaml=GOOD,
    ),
    "stop -inf in the file": Case(
        TRAIN,
        r"Stop criterion 'training_iteration' .* must be a finite number, got -inf",
        yaml=GOOD.replace("{training_iteration: 1}", "{training_iteration: -.inf}"),
    ),
    "no stop at all with --algo": Case(
        ["train", "--algo", "MAML", "--env", "PointNavigation2D"],
        r"No stop criterion in experiment 'MAML_PointNavigation2D': its trials would never "
        r"stop\..*--stop '\{\"training_iteration\": 100\}'",
    ),
    # env_config values, checked when the algorithm config is validated (a driver env).
    "env_config horizon ten": Case(
        TRAIN,
        r"PointNavigation2D: env_config key 'horizon' must be an integer >= 1, got 'ten'\.",
        yaml=with_config("    env_config: {horizon: ten}\n"),
    ),
    "env_config horizon from --config": Case(
        [*TRAIN, "--config", '{"env_config": {"horizon": 0}}'],
        r"PointNavigation2D: env_config key 'horizon' must be an integer >= 1, got 0\.",
        yaml=GOOD,
    ),
    "env_config for an RLlib algorithm (no driver env)": Case(
        TRAIN,
        r"Invalid env_config in experiment 'exp': PointNavigation2D: env_config key 'horizon' "
        r"must be an integer >= 1, got 'ten'\.",
        yaml=with_config("    env_config: {horizon: ten}\n")
        .replace("run: MAML", "run: PPO")
        .replace("    meta_batch_size: 2\n", ""),
    ),
    "env_config unknown key with did-you-mean": Case(
        TRAIN,
        r"PointNavigation2D: unknown env_config key 'horizn'\. Did you mean 'horizon'\? "
        r"Known keys: action_bound, horizon, task\.",
        yaml=with_config("    env_config: {horizn: 10}\n"),
    ),
    "env_config key of another env": Case(
        [*TRAIN, "--env", "CartPoleMass"],
        r"CartPoleMass: unknown env_config key 'horizon'\. Known keys: max_episode_steps, task\.",
        yaml=GOOD,
    ),
    "env_config bool as int for RL2": Case(
        TRAIN,
        r"BernoulliBandit: env_config key 'num_arms' must be an integer >= 1, got True\.",
        yaml=with_config(
            "    env_config: {num_arms: true}\n",
            GOOD.replace("PointNavigation2D", "BernoulliBandit").replace("MAML", "RL2"),
        ).replace("meta_batch_size: 2", "episodes_per_trial: 2"),
    ),
    "env_config of a multi-agent env": Case(
        TRAIN,
        r"CooperativeNavigation: env_config key 'observe_landmarks' must be true or false, "
        r"got 'yes'\.",
        yaml=with_config(
            "    env_config: {observe_landmarks: 'yes'}\n",
            GOOD.replace("PointNavigation2D", "CooperativeNavigation"),
        ),
    ),
    # Algorithm settings and multi-agent setup, checked by the config's validate().
    "inner_lr inf": Case(
        TRAIN,
        r"`inner_lr` must be a finite number > 0; got inf",
        yaml=GOOD.replace(
            "    meta_batch_size: 2\n", "    meta_batch_size: 2\n    inner_lr: .inf\n"
        ),
    ),
    "meta_batch_size -1 (RLlib's DEPRECATED_VALUE)": Case(
        [*TRAIN, "--config", '{"meta_batch_size": -1}'],
        r"`meta_batch_size` must be an integer >= 1; got -1.*DEPRECATED_VALUE",
        yaml=GOOD,
    ),
    "modules_to_adapt names no module": Case(
        [*TRAIN, "--config", '{"modules_to_adapt": ["agent_0"]}'],
        r"`modules_to_adapt` names modules \['agent_0'\] that do not exist; the modules are "
        r"\['default_policy'\]",
        yaml=GOOD,
    ),
    "multi-agent env without multi_agent": Case(
        TRAIN,
        r"MAML: the env is multi-agent .*no multi-agent setup",
        yaml=GOOD.replace("PointNavigation2D", "CooperativeNavigation"),
    ),
    # Checkpoints.
    "missing checkpoint directory": Case(
        ["evaluate", "{missing}"], r"Checkpoint not found: .*no_such_checkpoint\."
    ),
    "truncated rllib_checkpoint.json": Case(
        EVALUATE,
        r"Checkpoint file .*/rllib_checkpoint\.json is unreadable, probably truncated or "
        rf"corrupt \(JSONDecodeError: .*\); {ADVICE}",
        checkpoint=truncate("rllib_checkpoint.json"),
    ),
    "truncated class_and_ctor_args.pkl": Case(
        EVALUATE,
        r"Checkpoint file .*/checkpoint/class_and_ctor_args\.pkl is unreadable, probably "
        rf"truncated or corrupt \((UnpicklingError|EOFError).*\); {ADVICE}",
        checkpoint=truncate("class_and_ctor_args.pkl"),
    ),
    "truncated algorithm state": Case(
        EVALUATE,
        r"Checkpoint file .*/algorithm_state\.pkl is unreadable, probably truncated",
        checkpoint=truncate("algorithm_state.pkl"),
    ),
    "truncated module state": Case(
        EVALUATE,
        rf"Checkpoint file .*/{re.escape(MODULE_STATE)} is unreadable, probably truncated or "
        rf"corrupt \(.+\); {ADVICE}",
        checkpoint=truncate(MODULE_STATE),
    ),
    "truncated component metadata": Case(
        EVALUATE,
        r"Checkpoint file .*/env_runner/metadata\.json is unreadable, probably truncated",
        checkpoint=truncate("env_runner/metadata.json"),
    ),
    "missing component state": Case(
        EVALUATE,
        r"Checkpoint file .*/env_runner/state\.pkl or state\.msgpack is missing \(the state of "
        rf"component .*/env_runner\); the checkpoint is incomplete: {ADVICE}",
        checkpoint=delete("env_runner/state.pkl"),
    ),
    "missing algorithm state": Case(
        EVALUATE,
        r"Checkpoint file .*/algorithm_state\.pkl or algorithm_state\.msgpack is missing",
        checkpoint=delete("algorithm_state.pkl"),
    ),
    "missing class_and_ctor_args.pkl": Case(
        EVALUATE,
        r"is not an algorithm checkpoint of the new API stack \(class_and_ctor_args\.pkl is "
        r"missing\)",
        checkpoint=delete("class_and_ctor_args.pkl"),
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_bad_input_exits_2_with_one_line_naming_the_problem(case: Case, tmp_path, capsys, request):
    values = {"missing": str(tmp_path / "no_such_checkpoint")}
    if case.yaml is not None:
        values["file"] = str(tmp_path / "exp.yaml")
        Path(values["file"]).write_text(textwrap.dedent(case.yaml))
    if case.checkpoint is not None:
        copy = tmp_path / "checkpoint"
        shutil.copytree(request.getfixturevalue("maml_checkpoint"), copy)
        case.checkpoint(copy)
        values["ckpt"] = str(copy)
    # Placeholders are whole arguments ("{file}"); JSON arguments stay as they are.
    argv = [values[arg[1:-1]] if arg in PLACEHOLDERS else arg for arg in case.argv]

    code = cli.main(argv)

    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith(ERROR) and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert re.search(case.message, err), f"{case.message!r} not in {err!r}"


def test_an_intact_checkpoint_passes_the_file_check(maml_checkpoint):
    """The reference for the checkpoint cases above: unchanged, the same copy is accepted."""
    path, kind = cli.resolve_checkpoint(str(maml_checkpoint))
    assert (path, kind) == (maml_checkpoint, "MAML")


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("rllib_checkpoint.json", r"rllib_checkpoint\.json is missing \(every RLlib algorithm"),
        (
            "class_and_ctor_args.pkl",
            r"/class_and_ctor_args\.pkl is missing \(the algorithm's class",
        ),
    ],
)
def test_check_checkpoint_files_names_a_missing_required_file(
    maml_checkpoint, tmp_path, relative, message
):
    """The public check (also used by ``from_checkpoint``), without the CLI's own checks."""
    from rllib_marl_meta.checkpoints import CheckpointError, check_checkpoint_files

    copy = tmp_path / "checkpoint"
    shutil.copytree(maml_checkpoint, copy)
    (copy / relative).unlink()
    with pytest.raises(
        CheckpointError, match=rf"^Checkpoint file {re.escape(str(copy))}.*{message}"
    ):
        check_checkpoint_files(copy)


def test_a_truncated_torch_file_is_named(maml_checkpoint, tmp_path):
    """``.pt`` files (torch.save) are read with torch.load; a cut one is named."""
    import torch

    from rllib_marl_meta.checkpoints import CheckpointError, check_checkpoint_files

    copy = tmp_path / "checkpoint"
    shutil.copytree(maml_checkpoint, copy)
    weights = copy / "learner_group" / "learner" / "weights.pt"
    torch.save({"w": torch.zeros(64, 64)}, weights)
    check_checkpoint_files(copy)  # Whole: accepted.
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=rf"{re.escape(str(weights))} is unreadable"):
        check_checkpoint_files(copy)


# --- Built-in envs -------------------------------------------------------------------------------

ENV_CASES = [
    ("PointNavigation2D", {"horizon": "ten"}, r"'horizon' must be an integer >= 1, got 'ten'"),
    ("PointNavigation2D", {"action_bound": 0}, r"'action_bound' must be a finite number > 0"),
    ("PointNavigation2D", {"horizon": 10.5}, r"'horizon' must be an integer >= 1, got 10\.5"),
    ("CartPoleMass", {"max_episode_steps": True}, r"'max_episode_steps' .* got True"),
    ("CartPoleMass", {"horizon": 10}, r"unknown env_config key 'horizon'.*max_episode_steps"),
    ("BernoulliBandit", {"num_arms": 0}, r"'num_arms' must be an integer >= 1, got 0"),
    ("BernoulliBandit", {"pulls_per_episode": None}, r"'pulls_per_episode' .* got None"),
    (
        "BernoulliBandit",
        {"num_arm": 3},
        r"unknown env_config key 'num_arm'\. Did you mean 'num_arms'",
    ),
    ("PendulumMass", {"g": float("nan")}, r"'g' must be a finite number >= 0, got nan"),
    (
        "PendulumMass",
        {"render_mode": "rgb"},
        r"'render_mode' must be one of 'human', 'rgb_array' or null, got 'rgb'",
    ),
    ("HalfCheetahVelocity", {"horizon": "200"}, r"'horizon' must be an integer >= 1, got '200'"),
    ("HalfCheetahDirection", {"ctrl_cost_weight": -1}, r"'ctrl_cost_weight' .* >= 0, got -1"),
    ("CooperativeNavigation", {"dt": 0}, r"'dt' must be a finite number > 0, got 0"),
    ("CooperativeNavigation", {"damping": 1.5}, r"'damping' must be a finite number in \[0, 1\]"),
    (
        "CooperativeNavigation",
        {"max_speed_range": [2.0, 1.0]},
        r"'max_speed_range' must be a pair \[low, high\] of numbers > 0 with low <= high",
    ),
    ("CooperativeNavigation", {"seed": -1}, r"'seed' must be an integer >= 0, got -1"),
    ("CooperativeNavigation", {"spawn_rang": 0.1}, r"Did you mean 'spawn_range'\? Known keys:"),
    ("DistributedOptimization", {"step_size": 0}, r"'step_size' must be a finite number > 0"),
    ("DistributedOptimization", {"dim": 2}, r"dim \(2\) must be at least num_agents \(4\)"),
    ("MetaWorldML1", {"horizon": 501}, r"'horizon' must be an integer in \[1, 500\], got 501"),
    ("MetaWorldML1", {"env_name": "reach-v9"}, r"unknown env_name 'reach-v9'"),
    ("MetaWorldML10", {"env_name": "reach-v3"}, r"unknown env_config key 'env_name'"),
    ("MPESpread", {"N": True}, r"'N' must be an integer >= 1, got True"),
    ("MPESpread", {"local_ratio": 2}, r"'local_ratio' must be a finite number in \[0, 1\], got 2"),
    ("MPESpread", {"continuous_actions": 1}, r"'continuous_actions' must be true or false"),
    ("PartnerNavigation", {"partner_delay": -1}, r"'partner_delay' must be an integer >= 0"),
    ("PartnerNavigation", {"landmark_range": 0}, r"'landmark_range' must be a finite number > 0"),
]


def test_every_builtin_env_has_a_bad_config_case():
    assert {name for name, _, _ in ENV_CASES} == set(BUILTIN_ENVS)


@pytest.mark.parametrize(("name", "config", "message"), ENV_CASES)
def test_bad_env_config_names_env_key_and_allowed_values(name, config, message):
    extra = BUILTIN_ENVS[name].extra
    if extra is not None:
        pytest.importorskip(EXTRA_MODULES[extra])
    with pytest.raises(ValueError) as info:
        make_env(name, config)
    text = str(info.value)
    assert text.startswith(f"{name}: "), text
    assert re.search(message, text), f"{message!r} not in {text!r}"
    assert "\n" not in text


@pytest.mark.parametrize("call", ["MAML.from_checkpoint", "algo.restore_from_path"])
@pytest.mark.parametrize("relative", ["algorithm_state.pkl", MODULE_STATE])
def test_python_api_names_a_truncated_checkpoint_file(maml_checkpoint, tmp_path, call, relative):
    from rllib_marl_meta import MAML
    from rllib_marl_meta.checkpoints import CheckpointError
    from tests.algorithms.maml.conftest import small_maml_config

    broken = tmp_path / "checkpoint"
    shutil.copytree(maml_checkpoint, broken)
    truncate(relative)(broken)
    pattern = rf"Checkpoint file .*{re.escape(relative)} is unreadable.*{ADVICE}"
    if call == "MAML.from_checkpoint":
        with pytest.raises(CheckpointError, match=pattern):
            MAML.from_checkpoint(str(broken))
        return
    algo = small_maml_config(meta_batch_size=2).env_runners(num_env_runners=0).build_algo()
    try:
        with pytest.raises(CheckpointError, match=pattern):
            algo.restore_from_path(str(broken))
    finally:
        algo.stop()

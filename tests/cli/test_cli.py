"""The command line: real subprocesses for every subcommand, and every bad-input case.

Subprocesses that start Ray get a private ``RAY_TMPDIR`` and use 127.0.0.1 (see
``tests/integration/_ray_utils.py``), so they never touch another Ray instance.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from rllib_marl_meta import cli
from rllib_marl_meta.rllib_compat import translate
from tests.integration._ray_utils import REPO, TINY_MAML, VENV_BIN, isolated_ray_env, run

CONSOLE_SCRIPT = VENV_BIN / "rllib-marl-meta"
RLLIB_SCRIPT = VENV_BIN / "rllib"
PYTHON_M = [sys.executable, "-m", "rllib_marl_meta"]
COOP = "tuned_examples/maml/cooperative_navigation.yaml"

GOOD = """
exp:
  env: PointNavigation2D
  run: MAML
  stop: {training_iteration: 1}
  config:
    meta_batch_size: 2
"""


def needs_script(path: Path) -> None:
    if not path.exists():
        pytest.skip(f"{path.name} is not installed (pip install -e .)")


# --- Subprocesses ----------------------------------------------------------------------------


def test_list_via_python_m():
    with isolated_ray_env() as env:
        proc = run([*PYTHON_M, "list"], env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "PointNavigation2D" in out and "goal~U[-0.5, 0.5]^(2,)" in out
    assert "CooperativeNavigation" in out and "multi-agent" in out
    assert "MAML" in out and "RL2" in out
    assert "maml/point_navigation.yaml" in out and "maml-point-navigation" in out


def test_list_json(capsys):
    assert cli.main(["list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    envs = {e["name"]: e for e in data["envs"]}
    assert envs["HalfCheetahVelocity"]["extra"] == "mujoco"
    assert envs["CooperativeNavigation"]["kind"] == "multi-agent"
    assert {a["name"] for a in data["algorithms"]} >= {"MAML", "RL2"}
    assert any(x["file"] == "maml/cartpole_mass.yaml" for x in data["tuned_examples"])


def test_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path):
    needs_script(CONSOLE_SCRIPT)
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("meta_batch_size", "meta_batch_sise"))
    with isolated_ray_env() as env:
        quiet = run([str(CONSOLE_SCRIPT), "train", "-f", str(bad)], env, timeout=120)
    message = (
        "rllib-marl-meta: error: Unknown config key 'meta_batch_sise' for MAML in experiment "
        "'exp'. Did you mean 'meta_batch_size'?"
    )
    assert quiet.returncode == 2
    assert quiet.stderr.strip().splitlines()[-1] == message
    assert "Traceback" not in quiet.stderr


def test_rllib_train_file_then_evaluate_multi_agent_checkpoint(tmp_path):
    """`rllib train file X.yaml` trains through Tune; `evaluate` meta-tests its checkpoint."""
    needs_script(RLLIB_SCRIPT)
    storage = tmp_path / "results"
    with isolated_ray_env() as env:
        train = run(
            [
                str(RLLIB_SCRIPT),
                "train",
                "file",
                COOP,
                "--stop",
                '{"training_iteration": 1}',
                "--config",
                json.dumps(TINY_MAML),
                "--storage-path",
                str(storage),
                "--num-cpus",
                "2",
            ],
            env,
            timeout=300,
        )
        assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
        out = train.stdout
        # Tune's progress table with the meta-learning columns, and the summary.
        for column in ("iter", "env steps", "pre-adapt return", "adapt 1 return"):
            assert column in out
        assert "adaptation_delta" in out
        assert "== maml-cooperative-navigation (MAML on CooperativeNavigation): 1 trial(s)" in out
        trial_dirs = [p for p in (storage / "maml-cooperative-navigation").iterdir() if p.is_dir()]
        assert len(trial_dirs) == 1
        trial = trial_dirs[0]
        assert (trial / "progress.csv").exists()
        assert list(trial.glob("events.out.tfevents*"))  # TensorBoard
        assert (trial / "checkpoint_000000" / "rllib_checkpoint.json").exists()

        output = tmp_path / "meta_test"
        evaluate = run(
            [
                *PYTHON_M,
                "evaluate",
                str(trial),  # a trial directory: its newest checkpoint is used
                "--num-tasks",
                "2",
                "--seed",
                "3",
                "--steps",
                "2",
                "--output-dir",
                str(output),
                "--num-cpus",
                "2",
            ],
            env,
            timeout=300,
        )
    assert evaluate.returncode == 0, evaluate.stdout[-3000:] + evaluate.stderr[-3000:]
    table = evaluate.stdout
    assert "Meta-test of MAML on CooperativeNavigation: 2 new tasks (seed 3)" in table
    header = next(line for line in table.splitlines() if line.startswith("point"))
    assert header.split()[:2] == ["point", "team"]
    assert "module/shared" in header and "agent/agent_0" in header and "agent/agent_1" in header
    for row in ("pre-adaptation", "after step 1", "after step 2"):
        assert any(line.startswith(row) and "±" in line for line in table.splitlines())
    assert "Adaptation (after step 2 minus pre-adaptation)" in table
    data = json.loads((output / "meta_test.json").read_text())
    assert data["labels"] == ["pre", "adapt_1", "adapt_2"]
    assert len(data["returns"][0]) == 2
    assert set(data["series"]) == {"team", "module/shared", "agent/agent_0", "agent/agent_1"}
    assert (output / "meta_test.png").read_bytes()[:4] == b"\x89PNG"


def _ray_processes(driver_pid: int, marker: str) -> list:
    """The processes of a CLI run: its descendants and any process with its env marker.

    Ray's workers rename themselves (``ray::...``), so they are found through the process tree
    and through the marker variable they inherit from the CLI's environment.
    """
    import psutil  # Ray's bundled copy, on the path since `rllib_marl_meta` imported Ray.

    found = {}
    try:
        for child in psutil.Process(driver_pid).children(recursive=True):
            found[child.pid] = child
    except psutil.NoSuchProcess:
        pass
    for proc in psutil.process_iter():
        try:
            if proc.pid != driver_pid and proc.environ().get("RMM_TEST_MARKER") == marker:
                found.setdefault(proc.pid, proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return list(found.values())


def test_sigterm_stops_training_and_every_ray_process_it_started(tmp_path):
    """SIGTERM acts as Ctrl-C: Ray shuts down, the trial's workers end, exit code 143."""
    import psutil  # Ray's bundled copy, on the path since `rllib_marl_meta` imported Ray.

    storage = tmp_path / "results"
    experiment = tmp_path / "long.yaml"
    experiment.write_text(GOOD.replace("training_iteration: 1", "training_iteration: 100000"))
    marker = uuid.uuid4().hex
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    started: list = []
    with isolated_ray_env() as env, open(stdout, "w") as out, open(stderr, "w") as err:
        env["RMM_TEST_MARKER"] = marker
        argv = [*PYTHON_M, "train", "-f", str(experiment), "--num-cpus", "2"]
        argv += ["--config", json.dumps(TINY_MAML), "--storage-path", str(storage)]
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=err)
        try:
            # Running: the trial has reported a result (a row in progress.csv).
            deadline = time.monotonic() + 120
            while not any(
                len(p.read_text().splitlines()) >= 2 for p in storage.rglob("progress.csv")
            ):
                assert proc.poll() is None, stderr.read_text()[-3000:]
                assert time.monotonic() < deadline, "the trial did not report a result in 120 s"
                time.sleep(0.5)
            started = _ray_processes(proc.pid, marker)
            titles = [" ".join(p.cmdline()) for p in started]
            assert any(t.startswith("ray::") for t in titles), titles  # Ray workers were found.

            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)

            assert code == cli.EXIT_TERMINATED == 143, stderr.read_text()[-3000:]
            assert "rllib-marl-meta: terminated by SIGTERM" in stderr.read_text()
            _, alive = psutil.wait_procs(started, timeout=30)
            assert not alive, [(p.pid, " ".join(p.cmdline())) for p in alive]
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for leftover in started:  # Only what this test started, should the test fail.
                try:
                    leftover.kill()
                except psutil.NoSuchProcess:
                    pass


def test_sigterm_becomes_an_interrupt_and_the_previous_handler_returns(monkeypatch, capsys):
    """In process: SIGTERM raises `Terminated` in `train`; main says so and returns 143."""
    previous = signal.getsignal(signal.SIGTERM)

    def train(args):
        assert signal.getsignal(signal.SIGTERM) is not previous  # Our handler is installed.
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # The handler raises before this returns.
        raise AssertionError("SIGTERM did not interrupt the command")

    monkeypatch.setattr(cli, "_train", train)
    assert cli.main(["train"]) == 143
    assert capsys.readouterr().err == "rllib-marl-meta: terminated by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) is previous


def test_sigterm_while_waiting_on_ray_still_exits_143(monkeypatch, capsys, ray_session):
    """Ray's core worker replaces an exception raised by a signal handler during ``ray.get``
    with a plain ``KeyboardInterrupt``; SIGTERM there must still exit 143, not Ctrl-C's 130."""
    import threading

    import ray

    @ray.remote(num_cpus=0)
    def sleeps() -> None:
        time.sleep(30)

    def train(args):
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM)).start()
        task = sleeps.remote()
        try:
            ray.get(task)
        finally:
            ray.cancel(task, force=True)
        raise AssertionError("SIGTERM did not interrupt the command")

    monkeypatch.setattr(cli, "_train", train)
    assert cli.main(["train"]) == cli.EXIT_TERMINATED
    assert capsys.readouterr().err == "rllib-marl-meta: terminated by SIGTERM\n"


# --- Bad input, in process (same code path as the scripts, without Python start-up) ---------


def write(tmp_path, text: str) -> str:
    path = tmp_path / "exp.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize(
    "text, message",
    [
        (GOOD.replace("run: MAML", "run: MAMLL"), "Unknown algorithm (run: 'MAMLL')"),
        (GOOD.replace("run: MAML", "run: MAMLL"), "Did you mean 'MAML'?"),
        (GOOD.replace("PointNavigation2D", "NoSuchEnv-v0"), "Unknown env 'NoSuchEnv-v0'"),
        (GOOD.replace("PointNavigation2D", "CartPoleMas"), "Did you mean 'CartPoleMass'?"),
        (GOOD.replace("meta_batch_size", "inner_rl"), "Did you mean 'inner_lr'?"),
        (
            GOOD + "    baseline: median\n",
            "`baseline` must be one of 'linear', 'value', 'central_value'; got 'median'",
        ),
        (GOOD + "  bad: [1, 2\n", "Malformed YAML in"),
        (GOOD + "  bad: [1, 2\n", "line 9, column 1"),
        (GOOD.replace("stop: {training_iteration: 1}", "stop: {x: high}"), "must be a number"),
        (GOOD + "    model_config: [1]\n", "`model_config` in experiment 'exp' must be a mapping"),
    ],
)
def test_bad_experiment_files(tmp_path, capsys, text, message):
    assert cli.main(["train", "-f", write(tmp_path, text)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("rllib-marl-meta: error: ") and err.count("\n") == 1
    assert "Traceback" not in err


def test_missing_experiment_file(tmp_path, capsys):
    assert cli.main(["train", "-f", str(tmp_path / "missing.yaml")]) == 2
    assert "Experiment file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config", "[1, 2]"], "--config takes a JSON or YAML mapping"),
        (["--stop", "{a: [1"], "Malformed YAML in --stop"),
        (["--config", '{"env": "Nope"}'], "Unknown env 'Nope'"),
        (["--algo", "MAML"], "Give either -f FILE or --algo"),
    ],
)
def test_bad_overrides(tmp_path, capsys, args, message):
    assert cli.main(["train", "-f", write(tmp_path, GOOD), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_trial_larger_than_the_local_ray_instance_exits_2_before_tune_waits(tmp_path):
    """Tune would leave such a trial PENDING forever; the CLI names the fix instead."""
    with isolated_ray_env() as env:
        train = run(
            [
                *PYTHON_M,
                "train",
                "-f",
                COOP,
                "--config",
                json.dumps({**TINY_MAML, "num_env_runners": 3}),
                "--storage-path",
                str(tmp_path / "results"),
                "--num-cpus",
                "2",
            ],
            env,
            # About 30 s alone; it starts a local Ray instance, which took over 120 s once with
            # two other processes on two cores.
            timeout=300,
        )
    assert train.returncode == 2, train.stdout[-2000:] + train.stderr[-2000:]
    assert "one trial needs 4 CPUs" in train.stderr
    assert "but Ray has 2" in train.stderr
    assert "num_env_runners" in train.stderr
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("address", "message"),
    [("FREE_PORT", "Cannot reach the Ray cluster"), ("not-an-address", "must be HOST:PORT")],
)
def test_unreachable_or_malformed_ray_address(tmp_path, capsys, address, message):
    from tests.integration._ray_utils import free_port

    address = f"127.0.0.1:{free_port()}" if address == "FREE_PORT" else address
    assert cli.main(["train", "-f", write(tmp_path, GOOD), "--ray-address", address]) == 2
    assert message in capsys.readouterr().err


def test_unreachable_ray_address_from_the_environment(tmp_path, capsys, monkeypatch):
    from tests.integration._ray_utils import free_port

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    assert cli.main(["train", "-f", write(tmp_path, GOOD)]) == 2
    assert "Cannot reach the Ray cluster" in capsys.readouterr().err


def test_train_needs_a_file_or_an_algorithm(capsys):
    assert cli.main(["train"]) == 2
    assert "train needs -f FILE.yaml" in capsys.readouterr().err
    assert cli.main(["train", "--algo", "MAML"]) == 2
    assert "--algo needs --env" in capsys.readouterr().err


def test_bad_option_values_exit_2_via_argparse(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train", "-f", "x.yaml", "--num-samples", "0"])
    assert info.value.code == 2
    assert "expected an integer >= 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args", [["train", "-f", "{f}", "-v"], ["-v", "train", "-f", "{f}"], ["train", "-vf", "{f}"]]
)
def test_verbose_shows_the_traceback(tmp_path, capsys, args):
    missing = str(tmp_path / "missing.yaml")
    assert cli.main([a.format(f=missing) for a in args]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "Experiment file not found" in err


def test_verbose_counts_before_and_after_the_subcommand(monkeypatch):
    seen = []
    monkeypatch.setattr(cli, "cmd_list", lambda args: seen.append(args.verbose) or 0)
    for argv, count in [(["list"], 0), (["-v", "list"], 1), (["-v", "list", "-vv"], 3)]:
        assert cli.main(argv) == 0
        assert seen.pop() == count


def test_evaluate_rejects_missing_checkpoint(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path / "nope")]) == 2
    assert "Checkpoint not found" in capsys.readouterr().err


def test_relative_checkpoint_paths_are_resolved(tmp_path, monkeypatch):
    # pyarrow's filesystem (used by Algorithm.from_checkpoint) rejects relative paths.
    (tmp_path / "ckpt").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(cli.CLIError, match=str(tmp_path / "ckpt")):
        cli.resolve_checkpoint("ckpt")


def test_evaluate_rejects_a_directory_that_is_no_checkpoint(tmp_path, capsys):
    assert cli.main(["evaluate", str(tmp_path)]) == 2
    assert "is not an RLlib algorithm checkpoint" in capsys.readouterr().err


def test_evaluate_rejects_a_checkpoint_of_another_algorithm(ray_session, tmp_path, capsys):
    from ray.rllib.algorithms.ppo import PPOConfig

    algo = (
        PPOConfig()
        .environment("CartPole-v1")
        .env_runners(num_env_runners=0)
        .rl_module(model_config={"fcnet_hiddens": [8]})
        .build_algo()
    )
    try:
        algo.save_to_path(str(tmp_path / "ppo"))
    finally:
        algo.stop()
    assert cli.main(["evaluate", str(tmp_path / "ppo")]) == 2
    err = capsys.readouterr().err
    assert "is from PPO, not a meta-learner" in err and "MAML or RL2" in err


def test_evaluate_rl2_checkpoint_reports_each_inner_episode(ray_session, tmp_path, capsys):
    try:
        from rllib_marl_meta.algorithms.rl2 import RL2Config
    except Exception as exc:  # noqa: BLE001 - RL² may still be in the works.
        pytest.skip(f"RL2 does not import: {exc}")
    algo = (
        RL2Config()
        .environment("BernoulliBandit", env_config={"num_arms": 3})
        .env_runners(num_env_runners=0)
        .training(
            episodes_per_trial=3,
            cell_size=8,
            train_batch_size_per_learner=60,
            minibatch_size=30,
            num_epochs=1,
        )
        .build_algo()
    )
    try:
        algo.save_to_path(str(tmp_path / "rl2"))
    finally:
        algo.stop()
    out_dir = tmp_path / "report"
    args = ["evaluate", str(tmp_path / "rl2"), "--num-tasks", "4", "--output-dir", str(out_dir)]
    assert cli.main(args) == 0
    table = capsys.readouterr().out
    assert "Meta-test of RL2 on BernoulliBandit: 4 new tasks (seed 0)" in table
    rows = [line.split()[:2] for line in table.splitlines() if line.startswith("episode ")]
    assert rows == [["episode", "1"], ["episode", "2"], ["episode", "3"]]
    assert "Adaptation (episode 3 minus episode 1)" in table
    data = json.loads((out_dir / "meta_test.json").read_text())
    assert data["labels"] == ["episode_1", "episode_2", "episode_3"]
    assert all(len(task_returns) == 4 for task_returns in data["returns"])


def test_train_with_algo_and_env_options_builds_an_experiment(monkeypatch):
    """`--algo/--env` without a file (old `rllib train --algo X --env Y`)."""
    seen = {}

    def fake_run(experiment, verbose):
        seen["experiment"] = experiment
        return 0

    monkeypatch.setattr(cli, "run_experiment", fake_run)
    monkeypatch.setattr(cli, "init_ray", lambda args: (False, None))
    monkeypatch.setattr(cli, "check_trials_fit", lambda experiments, on_cluster: None)
    code = cli.main(
        [
            "train",
            "--algo",
            "MAML",
            "--env",
            "PointNavigation2D",
            "--config",
            '{"inner_lr": 0.2}',
            "--stop",
            '{"training_iteration": 3}',
        ]
    )
    assert code == 0
    experiment = seen["experiment"]
    assert (experiment.run, experiment.env) == ("MAML", "PointNavigation2D")
    assert experiment.param_space["inner_lr"] == 0.2
    assert experiment.stop == {"training_iteration": 3}


def test_progress_columns_follow_the_algorithm(tmp_path):
    from rllib_marl_meta.experiments import load_experiments

    text = GOOD + "    inner_adaptation_steps: {grid_search: [1, 3]}\n"
    (experiment,) = load_experiments(write(tmp_path, text))
    columns = cli.progress_columns(experiment)
    assert columns["episode_return_mean"] == "pre-adapt return"
    assert [k for k in columns if k.startswith("episode_return_mean_adapt_")] == [
        "episode_return_mean_adapt_1",
        "episode_return_mean_adapt_2",
        "episode_return_mean_adapt_3",
    ]
    assert "adaptation_delta" in columns
    assert "env_runners/num_env_steps_sampled_lifetime" in columns
    assert "training_iteration" in columns

    ppo = "p:\n  env: CartPole-v1\n  run: PPO\n  stop: {training_iteration: 1}\n"
    (experiment,) = load_experiments(write(tmp_path, ppo))
    assert "env_runners/episode_return_mean" in cli.progress_columns(experiment)


def test_rllib_compat_translates_old_forms():
    assert translate(["train", "file", "x.yaml", "--stop", "{}"]) == [
        "train",
        "-f",
        "x.yaml",
        "--stop",
        "{}",
    ]
    assert translate(["train", "-f", "x.yaml"]) == ["train", "-f", "x.yaml"]
    assert translate(["evaluate", "ckpt"]) == ["evaluate", "ckpt"]


def test_rllib_command_reports_errors_under_its_own_name(tmp_path, capsys):
    from rllib_marl_meta.rllib_compat import main as rllib_main

    assert rllib_main(["train", "file", str(tmp_path / "missing.yaml")]) == 2
    assert capsys.readouterr().err.startswith("rllib: error: Experiment file not found")

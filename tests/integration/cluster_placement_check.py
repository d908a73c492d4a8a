"""A real two-node Ray cluster on this machine: MAML's EnvRunners go to the worker node.

Run as a script in an environment from ``_ray_utils.isolated_ray_env`` (the test does). It

1. starts a ``ray.cluster_utils.Cluster``: a head node with 1 CPU and a worker node with 2 CPUs
   and the custom resource ``{"worker_node": 1}``;
2. builds MAML with one EnvRunner that asks for ``{"worker_node": 0.01}``, records the node id
   of every remote EnvRunner and trains one tiny iteration;
3. runs ``python -m rllib_marl_meta train --ray-address <cluster>`` with the same placement, to
   show that the CLI joins an existing cluster;
4. shuts everything down.

Prints one JSON line with the node ids, the metrics and the CLI's exit code; exits 0 when the
EnvRunner ran on the worker node, sampled there, and the CLI run succeeded.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ray_utils import REPO, TINY_MAML  # noqa: E402

# One remote EnvRunner, which only the worker node (custom resource) can host.
TINY = {
    **TINY_MAML,
    "num_env_runners": 1,
    "custom_resources_per_env_runner": {"worker_node": 0.01},
}
# 2 tasks x 1 episode x (pre + 1 adaptation round) x 10 steps.
EXPECTED_ENV_STEPS = 2 * 1 * 2 * 10


def main() -> int:
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    worker = cluster.add_node(num_cpus=2, resources={"worker_node": 1})
    cluster.wait_for_nodes()
    out: dict = {"head_node": cluster.head_node.node_id, "worker_node": worker.node_id}
    storage = tempfile.mkdtemp(prefix="rmm-cluster-")
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        import rllib_marl_meta  # noqa: F401  (registers envs and algorithms)
        from rllib_marl_meta.algorithms.maml import MAMLConfig

        config = (
            MAMLConfig()
            .environment("PointNavigation2D", env_config=TINY["env_config"])
            .rl_module(model_config=TINY["model_config"])
            .training(meta_batch_size=2, episodes_per_task=1, maml_optimizer_steps=1)
            .env_runners(num_env_runners=1, custom_resources_per_env_runner={"worker_node": 0.01})
        )
        algo = config.build_algo()
        try:
            out["env_runner_nodes"] = algo.env_runner_group.foreach_env_runner(
                lambda runner: ray.get_runtime_context().get_node_id(), local_env_runner=False
            )
            result = algo.train()
            out["env_steps"] = float(result["env_runners"]["num_env_steps_sampled_lifetime"])
            out["adaptation_delta"] = float(result["adaptation_delta"])
        finally:
            algo.stop()
        ray.shutdown()

        cli = subprocess.run(
            [
                sys.executable,
                "-m",
                "rllib_marl_meta",
                "train",
                "-f",
                str(REPO / "tuned_examples" / "maml" / "point_navigation.yaml"),
                "--ray-address",
                cluster.address,
                "--stop",
                json.dumps({"training_iteration": 1}),
                "--config",
                json.dumps(TINY),
                "--storage-path",
                storage,
            ],
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
        print(cli.stdout[-4000:])
        print(cli.stderr[-4000:], file=sys.stderr)
        out["cli_returncode"] = cli.returncode
        out["cli_shows_delta"] = "adaptation_delta" in cli.stdout
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(storage, ignore_errors=True)
    ok = (
        out.get("env_runner_nodes") == [out["worker_node"]]
        and out["worker_node"] != out["head_node"]
        and out.get("env_steps") == EXPECTED_ENV_STEPS
        and out.get("cli_returncode") == 0
        and out.get("cli_shows_delta")
    )
    print(json.dumps(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Starts a local Ray head node, submits a ``rllib-marl-meta train`` job and checks it.

Run it as a script (``python tests/integration/ray_job_check.py``, as the test does, in an
environment from ``_ray_utils.isolated_ray_env``). It

1. starts ``ray start --head --block --num-cpus 2 --include-dashboard true`` on 127.0.0.1 with
   free ports (the dashboard hosts the job server);
2. submits ``rllib-marl-meta train -f tuned_examples/maml/point_navigation.yaml`` shrunk to one
   tiny iteration, with ``ray.job_submission.JobSubmissionClient``;
3. waits for the job, prints its logs, and checks that it SUCCEEDED and that its logs show the
   meta-learning metrics;
4. stops the head node (SIGTERM to the ``ray start --block`` process it started).

Prints one JSON line ``{"status": ..., "checks": {...}}`` last; exits 0 when every check passed.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ray_utils import REPO, TINY_MAML, VENV_BIN, free_port  # noqa: E402

# The head node runs with the environment as given; it enables Ray's token authentication by
# default (creating ~/.ray/auth_token if needed). This process is a client of it, and Ray's
# HTTP clients send the token only in token mode, which is read when Ray is first imported.
HEAD_ENV = dict(os.environ)
os.environ.setdefault("RAY_AUTH_MODE", "token")

STARTUP_TIMEOUT_S = 90
JOB_TIMEOUT_S = 240
EXPECTED_IN_LOGS = ("adaptation_delta", "pre-adapt return", "maml-point-navigation")


def start_head(dashboard_port: int, log_path: Path) -> subprocess.Popen:
    cmd = [
        str(VENV_BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--num-cpus=2",
        "--include-dashboard=true",
        "--node-ip-address=127.0.0.1",
        f"--port={free_port()}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dashboard_port}",
        f"--dashboard-agent-listen-port={free_port()}",
        "--disable-usage-stats",
    ]
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=HEAD_ENV)


def wait_for_job_server(url: str, head: subprocess.Popen):
    """A JobSubmissionClient once the head's job server answers."""
    from ray.job_submission import JobSubmissionClient

    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited with {head.returncode}")
        try:
            client = JobSubmissionClient(url)
            client.list_jobs()
            return client
        except Exception as exc:  # noqa: BLE001 - not up yet.
            last_error = exc
            time.sleep(1.0)
    raise TimeoutError(f"Job server at {url} did not come up: {last_error!r}")


def main() -> int:
    from ray.job_submission import JobStatus

    storage = tempfile.mkdtemp(prefix="rmm-job-")
    dashboard_port = free_port()
    head_log = Path(storage) / "head.log"
    head = start_head(dashboard_port, head_log)
    status, logs = None, ""
    try:
        client = wait_for_job_server(f"http://127.0.0.1:{dashboard_port}", head)
        entrypoint = shlex.join(
            [
                "rllib-marl-meta",
                "train",
                "-f",
                "tuned_examples/maml/point_navigation.yaml",
                "--stop",
                json.dumps({"training_iteration": 1}),
                "--config",
                json.dumps(TINY_MAML),
                "--storage-path",
                storage,
            ]
        )
        job_id = client.submit_job(entrypoint=entrypoint)
        print(f"submitted {job_id}: {entrypoint}", flush=True)
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            status = client.get_job_status(job_id)
            if status in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
                break
            time.sleep(1.0)
        else:
            client.stop_job(job_id)
        logs = client.get_job_logs(job_id)
    finally:
        head.send_signal(signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
    print("---- job logs ----")
    print(logs)
    print("---- head log (tail) ----")
    print("\n".join(head_log.read_text().splitlines()[-15:]))
    checks = {"succeeded": status == JobStatus.SUCCEEDED}
    checks.update({f"logs show {text!r}": text in logs for text in EXPECTED_IN_LOGS})
    checks["checkpoint written"] = any(Path(storage).rglob("rllib_checkpoint.json"))
    shutil.rmtree(storage, ignore_errors=True)
    print(json.dumps({"status": str(status), "checks": checks}))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

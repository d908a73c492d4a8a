"""Meta-update time: first- vs second-order, against a minimal hand-written torch.func MAML loop.

All three run on the same batches (one iteration of PointNavigation2D data: ``--tasks`` tasks x
``--episodes`` episodes x 100 steps, K=1, for each value of ``--episodes``) and the same (64, 64)
tanh network. The hand-written loop is what one would write without RLlib: ``torch.func.grad``
for the inner step on the module's forward pass, the same PPO-clip + KL outer loss, one Adam
step. Peak memory (max RSS) of the driver and of a remote Learner is measured with the first
``--episodes`` value.

    python bench/maml_meta_update.py [--tasks 40] [--episodes 10 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import ray
import torch
from ray.rllib.core.columns import Columns

import rllib_marl_meta  # noqa: F401
from rllib_marl_meta.algorithms.maml import MAMLConfig
from rllib_marl_meta.algorithms.maml.advantages import ADVANTAGES


def config(order: str, tasks: int, episodes: int, num_learners: int = 0) -> MAMLConfig:
    return (
        MAMLConfig()
        .environment("PointNavigation2D")
        .env_runners(num_envs_per_env_runner=episodes)
        .learners(num_learners=num_learners)
        .debugging(seed=0)
        .training(
            meta_batch_size=tasks,
            episodes_per_task=episodes,
            maml_optimizer_steps=1,
            meta_gradient=order,
        )
    )


def handwritten_step(module, batches, inner_lr, clip, kl_coeff, optimizer) -> None:
    """Minimal MAML-PPO meta-gradient step with torch.func (the reference implementation)."""
    dist_cls = module.get_train_action_dist_cls()
    params = {k: v for k, v in module.named_parameters()}

    def logp(p, b):
        out = torch.func.functional_call(module, p, (b,))
        return dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS]), b[Columns.ACTIONS]

    def inner(p, b):
        dist, actions = logp(p, b)
        return -(dist.logp(actions) * b[ADVANTAGES]).mean()

    def task_loss(p, pre, post):
        g = torch.func.grad(inner)(p, pre)
        adapted = {k: p[k] - inner_lr * g[k] for k in p}
        dist, actions = logp(adapted, post)
        ratio = torch.exp(dist.logp(actions) - post[Columns.ACTION_LOGP])
        adv = post[ADVANTAGES]
        surrogate = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
        old = dist_cls.from_logits(post[Columns.ACTION_DIST_INPUTS])
        return surrogate + kl_coeff * old.kl(dist).mean()

    optimizer.zero_grad()
    loss = sum(task_loss(params, pre, post) for pre, post in batches) / len(batches)
    loss.backward()
    optimizer.step()


HANDWRITTEN = "hand-written torch.func (second order)"


def stack_and_step(learner, task_ids: list[int]) -> None:
    """One meta-gradient step on the tasks' batches, stacked first."""
    learner._meta_gradient_step(task_ids, learner._stack_steps(task_ids), len(task_ids))


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(tasks: int, episodes: int, repeats: int) -> dict[str, float]:
    """Seconds per meta-gradient step of each row, on one iteration's batches."""
    rows = {}
    for order in ("first_order", "second_order"):
        algo = config(order, tasks, episodes).build_algo()
        sampled = algo._task_env.sample_tasks(tasks, seed=0)
        algo._sample_and_adapt(sampled, num_steps=1, seed=0)
        learner = algo.learner_group._learner
        task_ids = list(range(tasks))
        # Stacking the tasks' batches is timed with the step, as if each iteration made one.
        rows[order] = timed(functools.partial(stack_and_step, learner, task_ids), repeats)
        if order == "second_order":
            module = learner.module["default_policy"].unwrapped()
            batches = [
                (b[0]["default_policy"], b[1]["default_policy"])
                for b in (learner._task_batches[i] for i in task_ids)
            ]
            optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
            rows[HANDWRITTEN] = timed(
                functools.partial(handwritten_step, module, batches, 0.1, 0.3, 5e-4, optimizer),
                repeats,
            )
        algo.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--episodes", type=int, nargs="+", default=[10, 2])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    torch.set_num_threads(1)

    print(f"meta-batch {args.tasks} tasks x 100-step episodes, K=1, (64, 64) tanh, 1 torch thread")
    print("| episodes per task | meta-update step | seconds | ratio to hand-written |")
    print("| --- | --- | --- | --- |")
    for episodes in args.episodes:
        rows = measure(args.tasks, episodes, args.repeats)
        reference = rows[HANDWRITTEN]
        for name, seconds in rows.items():
            print(f"| {episodes} | {name} | {seconds:.3f} | {seconds / reference:.2f} |")
    driver_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("target: second order <= 0.5 x hand-written")

    # Peak memory with a remote Learner, so driver and Learner are separate processes.
    algo = config("second_order", args.tasks, args.episodes[0], num_learners=1).build_algo()
    algo.train()
    learner_rss = algo.learner_group.foreach_learner(
        lambda learner: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    learner_mb = [r.get() for r in learner_rss][0]
    driver_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    algo.stop()
    print(
        f"peak RSS at meta_batch_size {args.tasks}: driver {driver_mb:,.0f} MiB "
        f"(local-learner runs: {driver_rss:,.0f} MiB), remote Learner {learner_mb:,.0f} MiB"
    )


if __name__ == "__main__":
    main()

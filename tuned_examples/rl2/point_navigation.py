"""RL² on the MAML paper's 2D navigation: a hidden goal ~ U[-0.5, 0.5]^2, reward minus the
distance to it, 20-step episodes. A trial is 2 episodes of one goal, so the policy can search for
the goal in episode 1 and go straight to it in episode 2 (env_runners/trial_adaptation_mean > 0).
Each 40-step trial is one sequence for backprop through time.

Measured: these settings (RL2Config's update: 10 epochs of 128-step minibatches) are the RL² row
of `python bench/maml_learning.py --env PointNavigation2D --max-steps 1 --rl2-only --budget
300000`. At the stop (300k env steps, 2,438 s on 2 cores shared with another benchmark) inner
episode 2 beat episode 1 on 20 held-out goals by +2.32 [95% CI +1.84, +2.80] (-4.22 -> -1.90).
5 epochs of 1,000-step minibatches ran 3.3x the env steps in the same time on the same machine
and adapted less (+0.90 [-0.18, +1.98] at 1M steps, 2,205 s).

RLlib's tuned-example form of `point_navigation.yaml`: the settings that differ from the
config's defaults (`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run
by RLlib's example-script runner:

    python tuned_examples/rl2/point_navigation.py --help
"""

from rllib_marl_meta import RL2Config
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser("RL2", timesteps=300_000)

config = (
    RL2Config()
    .environment("PointNavigation2D", env_config={"horizon": 20})
    .env_runners(num_env_runners=1, num_envs_per_env_runner=8)
    .debugging(seed=0)
    .training(
        episodes_per_trial=2,
        max_seq_len=40,
        train_batch_size_per_learner=4000,
    )
)

if __name__ == "__main__":
    run_tuned_example(config, parser)

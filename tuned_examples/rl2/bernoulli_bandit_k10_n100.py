"""RL² on the RL² paper's harder bandit setting: k = 10 arms, n = 100 pulls per trial. The whole
100-step trial is one backprop-through-time sequence (max_seq_len 100). A uniformly random
policy earns 50 per trial, always pulling the best arm about 91; the RL² paper reports
about 83 for Gittins and RL² after long training. Expect millions of pulls.
Target from a run of the YAML (seed 0, 2 CPUs, other runs beside it for its first 1,450 s):
the trial return stayed at the random policy's 50 for about 450k pulls, rose to 62.2 at
iteration 64 (640k pulls, 2,227 s) and then levelled off: 61.5 on average over 760k-1.05M
pulls (stopped at 2,865 s), 13 of those 30 iterations at or above 62. The paper's 83 was not
reached here; the k5/n100 bench found GAE lambda 0.3 and 500-pull minibatches better there.

RLlib's tuned-example form of
`bernoulli_bandit_k10_n100.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/rl2/bernoulli_bandit_k10_n100.py --help
"""

from rllib_marl_meta import RL2Config
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser(
    "RL2", timesteps=20_000_000, target_metric="env_runners/episode_return_mean", target=62.0
)

config = (
    RL2Config()
    .environment("BernoulliBandit", env_config={"num_arms": 10})
    .env_runners(num_env_runners=1, num_envs_per_env_runner=10)
    .debugging(seed=0)
    .training(
        episodes_per_trial=100,
        max_seq_len=100,
        train_batch_size_per_learner=10_000,
        minibatch_size=1000,
    )
)

if __name__ == "__main__":
    run_tuned_example(config, parser)

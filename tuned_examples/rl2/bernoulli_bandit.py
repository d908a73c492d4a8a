"""RL² on the RL² paper's multi-armed bandits (Duan et al., 2016, section 5.1): k = 5 Bernoulli
arms with success probabilities p ~ U[0, 1]^5, n = 10 pulls per trial (a trial is 10 one-pull
episodes of one task; the GRU state carries across them). A uniformly random policy earns
5.0 per trial, the Gittins index about 6.6, always pulling the best arm about 8.3.
garage RL²-PPO settings (GRU 64, gamma 0.99, lambda 0.95, clip 0.2, 10 epochs) with lr 1e-3.
Measured (2026-12-01, seed 0, `rllib-marl-meta train -f tuned_examples/rl2/bernoulli_bandit.yaml`):
the trial return reached the 6.5 target (6.56) after 106,000 pulls, 561 s on 2 CPUs shared
with another training run.

RLlib's tuned-example form of
`bernoulli_bandit.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/rl2/bernoulli_bandit.py --help
"""

from rllib_marl_meta import RL2Config
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser(
    "RL2", timesteps=2_000_000, target_metric="env_runners/episode_return_mean", target=6.5
)

config = (
    RL2Config()
    .environment("BernoulliBandit", env_config={"num_arms": 5, "pulls_per_episode": 1})
    .env_runners(num_env_runners=0, num_envs_per_env_runner=10)
    .debugging(seed=0)
    .training(
        max_seq_len=10,
        train_batch_size_per_learner=2000,
        minibatch_size=500,
    )
)

if __name__ == "__main__":
    run_tuned_example(config, parser)

"""RL² on the MAML paper's 2D navigation: a hidden goal ~ U[-0.5, 0.5]^2, reward minus the
distance to it, 100-step episodes. A trial is 2 episodes of one goal, so the policy can find
the goal in episode 1 and go straight to it in episode 2 (env_runners/trial_adaptation_mean
> 0). Trials of 200 steps are cut into 100-step sequences for backprop through time; the
state at each cut comes from sampling.

RLlib's tuned-example form of
`point_navigation.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/rl2/point_navigation.py --help
"""

from rllib_marl_meta import RL2Config
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser("RL2", timesteps=5_000_000)

config = (
    RL2Config()
    .environment("PointNavigation2D", env_config={"horizon": 100})
    .env_runners(num_env_runners=1, num_envs_per_env_runner=10)
    .debugging(seed=0)
    .training(
        episodes_per_trial=2,
        max_seq_len=100,
        lr=0.0003,
        train_batch_size_per_learner=8000,
        minibatch_size=1000,
    )
)

if __name__ == "__main__":
    run_tuned_example(config, parser)

"""MAML on CartPole with random cart and pole masses (masscart ~ U[0.5, 2.0],
masspole ~ U[0.05, 0.2]); episodes capped at 200 steps.
Measured (2026-12-01, seed 0, `rllib-marl-meta train -f tuned_examples/maml/cartpole_mass.yaml`):
the return after one adaptation step reached the 190 target (195.5) after 574,407 env steps
(14 iterations), 372 s on 2 CPUs shared with another training run.

RLlib's tuned-example form of
`cartpole_mass.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/maml/cartpole_mass.py --help
"""

from rllib_marl_meta import MAMLConfig
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser(
    "MAML", timesteps=5_000_000, target_metric="episode_return_mean_adapt_1", target=190.0
)

config = (
    MAMLConfig()
    .environment("CartPoleMass", env_config={"max_episode_steps": 200})
    .env_runners(num_env_runners=1)
    .debugging(seed=0)
    .training(
        meta_batch_size=20,
        episodes_per_task=10,
    )
)

if __name__ == "__main__":
    run_tuned_example(config, parser)

"""MAML on HalfCheetah running forward or backward (direction ~ U{-1, 1}), horizon 100 as in
ProMP. Needs the mujoco extra: pip install -c constraints.txt -e ".[mujoco]"

RLlib's tuned-example form of
`half_cheetah_direction.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/maml/half_cheetah_direction.py --help
"""

from rllib_marl_meta import MAMLConfig
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser(
    "MAML", timesteps=30_000_000, target_metric="episode_return_mean_adapt_1", target=500.0
)

config = (
    MAMLConfig()
    .environment("HalfCheetahDirection", env_config={"horizon": 100})
    .env_runners(num_env_runners=4)
    .debugging(seed=0)
)

if __name__ == "__main__":
    run_tuned_example(config, parser)

"""MAML on HalfCheetah with a random target velocity (U[0, 2]), horizon 100 as in ProMP
(the MAML paper used 200). Sized for 2 CPUs: 10 tasks x 10 episodes per adaptation step, a
quarter of ProMP's batch (bench/maml_learning.py's setting; README, Benchmarks). ProMP's
paper scale on a cluster: `--num-env-runners 32` and `meta_batch_size=40, episodes_per_task=20`.
Target from a run of the YAML (seed 0, 2 CPUs, other runs beside it for its first 2,400 s):
the return after one inner step (a mean over 10 target speeds, so it moves +-15 from one
iteration to the next) went from a mean of -150 over iterations 1-10 to -76 over 141-150
(3M env steps, 2,701 s); it first passed -75 at iteration 94 (1.88M env steps, 2,117 s),
and 17 of the last 50 iterations were at or above it.
Needs the mujoco extra: pip install -c constraints.txt -e ".[mujoco]"

RLlib's tuned-example form of
`half_cheetah_velocity.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/maml/half_cheetah_velocity.py --help
"""

from rllib_marl_meta import MAMLConfig
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser(
    "MAML", timesteps=3_000_000, target_metric="episode_return_mean_adapt_1", target=-75.0
)

config = (
    MAMLConfig()
    .environment("HalfCheetahVelocity", env_config={"horizon": 100})
    .env_runners(num_env_runners=1, num_envs_per_env_runner=5)
    .debugging(seed=0)
    .training(meta_batch_size=10, episodes_per_task=10)
)

if __name__ == "__main__":
    run_tuned_example(config, parser)

"""Logs the return of each inner episode of every finished RL² trial.

The trial wrappers put the per-inner-episode returns into the info of a trial's last step. This
callback reads them in ``on_episode_end`` on the EnvRunners and logs them with RLlib's
``MetricsLogger``, smoothed over the same window as RLlib's ``episode_return_mean``, so they
appear in the training results under ``env_runners/`` (``evaluation/env_runners/`` for
evaluation runners):

* ``trial_episode_{i}_return_mean`` for ``i = 1..episodes_per_trial`` (summed over agents in
  multi-agent envs, as RLlib's ``episode_return_mean`` is);
* ``trial_adaptation_mean``: the last inner episode's return minus the first's;
* multi-agent only: ``agent_trial_episode_{i}_return_mean/{agent_id}``;
* envs with a success flag (Meta-World): ``trial_episode_{i}_success_mean``.

RLlib's own ``episode_return_mean`` is the trial return.
"""

from __future__ import annotations

from typing import Any

from ray.rllib.callbacks.callbacks import RLlibCallback
from ray.rllib.env.multi_agent_episode import MultiAgentEpisode

from rllib_marl_meta.algorithms.rl2.trial_wrapper import (
    INNER_EPISODE_RETURNS,
    INNER_EPISODE_SUCCESSES,
)

DEFAULT_WINDOW = 100


def trial_episode_key(i: int) -> str:
    """Result key of the mean return of inner episode ``i`` (1-based) of a trial."""
    return f"trial_episode_{i}_return_mean"


def agent_trial_episode_key(i: int) -> str:
    """Result key (a dict by agent id) of agents' mean returns of inner episode ``i``."""
    return f"agent_trial_episode_{i}_return_mean"


TRIAL_ADAPTATION = "trial_adaptation_mean"


def _last_returns(single_agent_episode: Any) -> list[float] | None:
    try:
        info = single_agent_episode.get_infos(-1)
    except (IndexError, KeyError):
        return None
    returns = info.get(INNER_EPISODE_RETURNS) if isinstance(info, dict) else None
    return None if returns is None else [float(r) for r in returns]


class RL2MetricsCallback(RLlibCallback):
    """Logs per-inner-episode returns of finished trials (see the module docstring)."""

    def on_episode_end(
        self,
        *,
        episode: Any,
        env_runner: Any = None,
        metrics_logger: Any = None,
        **kwargs: Any,
    ) -> None:
        if metrics_logger is None:
            return
        window = DEFAULT_WINDOW
        if env_runner is not None:
            window = getattr(env_runner.config, "metrics_num_episodes_for_smoothing", window)
        if isinstance(episode, MultiAgentEpisode):
            per_agent = {}
            for agent_id, agent_episode in episode.agent_episodes.items():
                returns = _last_returns(agent_episode)
                if returns is not None:
                    per_agent[agent_id] = returns
            if not per_agent:
                return
            for agent_id, returns in per_agent.items():
                for i, r in enumerate(returns, start=1):
                    metrics_logger.log_value(
                        (agent_trial_episode_key(i), str(agent_id)), r, window=window
                    )
            n = max(len(r) for r in per_agent.values())
            team = [sum(r[i] for r in per_agent.values() if i < len(r)) for i in range(n)]
        else:
            team = _last_returns(episode)
            if team is None:
                return
            info = episode.get_infos(-1)
            for i, success in enumerate(info.get(INNER_EPISODE_SUCCESSES) or [], start=1):
                metrics_logger.log_value(f"trial_episode_{i}_success_mean", success, window=window)
        for i, r in enumerate(team, start=1):
            metrics_logger.log_value(trial_episode_key(i), r, window=window)
        metrics_logger.log_value(TRIAL_ADAPTATION, team[-1] - team[0], window=window)

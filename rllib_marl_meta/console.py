"""A quiet console: drops three RLlib warnings that every build of our algorithms prints.

They say nothing actionable to a user of this package:

- "You are running MAML on the new API stack! ..." (``AlgorithmConfig``, on every build);
- "DeprecationWarning: `RLModule(config=[RLModuleConfig object])` ..." (RLlib's own default
  modules trigger it);
- "Install gputil for GPU system monitoring." (Tune's resource monitor).

Only WARNING-or-lower records whose message starts with one of these texts are dropped;
everything else, and every error, passes. :func:`quiet_rllib_noise` installs the filter on the
handlers of the ``ray`` loggers and the root logger of the calling process; pass it to
``ray.init(runtime_env={"worker_process_setup_hook": quiet_rllib_noise})`` for Ray's worker
processes (Tune trials, EnvRunners, Learners).
"""

from __future__ import annotations

import logging

NOISE_PREFIXES = (
    "You are running MAML on the new API stack!",
    "You are running RL2 on the new API stack!",
    "DeprecationWarning: `RLModule(config=[RLModuleConfig object])` has been deprecated.",
    "Install gputil for GPU system monitoring.",
)
LOGGERS = ("", "ray", "ray.rllib", "ray.tune")


class RLlibNoiseFilter(logging.Filter):
    """Drops the known RLlib noise (see the module docstring); lets everything else through."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.WARNING:
            return True
        return not record.getMessage().startswith(NOISE_PREFIXES)


def quiet_rllib_noise() -> None:
    """Installs :class:`RLlibNoiseFilter` on the ``ray`` and root loggers and their handlers."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for target in (logger, *logger.handlers):
            if not any(isinstance(f, RLlibNoiseFilter) for f in target.filters):
                target.addFilter(RLlibNoiseFilter())

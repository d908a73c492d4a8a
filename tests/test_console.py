"""The quiet console drops exactly RLlib's known noise, never errors or other warnings."""

from __future__ import annotations

import logging

import pytest

from rllib_marl_meta.console import RLlibNoiseFilter, quiet_rllib_noise


def _record(level: int, message: str) -> logging.LogRecord:
    return logging.LogRecord("ray.rllib", level, __file__, 1, message, None, None)


@pytest.mark.parametrize(
    ("level", "message", "shown"),
    [
        (logging.WARNING, "You are running MAML on the new API stack! This is the new ...", False),
        (
            logging.WARNING,
            "DeprecationWarning: `RLModule(config=[RLModuleConfig object])` has been deprecated. "
            "Use ...",
            False,
        ),
        (logging.WARNING, "Install gputil for GPU system monitoring.", False),
        (logging.WARNING, "You are running PPO on the new API stack! ...", True),
        (logging.WARNING, "Env step failed: Install gputil for GPU system monitoring.", True),
        (logging.ERROR, "Install gputil for GPU system monitoring.", True),
    ],
)
def test_filter_drops_only_known_noise(level, message, shown):
    assert RLlibNoiseFilter().filter(_record(level, message)) is shown


def test_quiet_rllib_noise_filters_the_ray_handlers(caplog):
    quiet_rllib_noise()
    quiet_rllib_noise()  # Idempotent: one filter per logger and handler.
    ray_logger = logging.getLogger("ray.rllib")
    assert sum(isinstance(f, RLlibNoiseFilter) for f in ray_logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="ray.rllib"):
        ray_logger.warning("Install gputil for GPU system monitoring.")
        ray_logger.warning("a real warning")
    assert [r.getMessage() for r in caplog.records] == ["a real warning"]

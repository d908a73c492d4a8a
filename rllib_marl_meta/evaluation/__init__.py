"""Meta-testing: adapt trained meta-learners to new tasks and report the adaptation curve."""

from rllib_marl_meta.evaluation.meta_test import meta_test
from rllib_marl_meta.evaluation.report import format_table, plot_curve, save_json, write_report
from rllib_marl_meta.meta_learner import MetaTestResult

__all__ = [
    "MetaTestResult",
    "format_table",
    "meta_test",
    "plot_curve",
    "save_json",
    "write_report",
]

"""Meta-testing: adapt trained meta-learners to new tasks and report the adaptation curve."""

from rllib_marl_meta.evaluation.meta_test import MetaTestResult, meta_test, meta_test_algorithm
from rllib_marl_meta.evaluation.report import format_table, plot_curve, save_json, write_report

__all__ = [
    "MetaTestResult",
    "format_table",
    "meta_test",
    "meta_test_algorithm",
    "plot_curve",
    "save_json",
    "write_report",
]

"""The ``rllib`` command of RLlib's old workflow (removed from Ray in PR #46724), on our CLI::

    rllib train file tuned_examples/maml/point_navigation.yaml [options]
    rllib train -f FILE.yaml | --algo MAML --env PointNavigation2D [options]
    rllib evaluate CHECKPOINT [options]
    rllib list

Options are those of ``rllib-marl-meta`` (``rllib train --help``).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from rllib_marl_meta.cli import main as cli_main

PROG = "rllib"


def translate(argv: Sequence[str]) -> list[str]:
    """``train file X.yaml ...`` -> ``train -f X.yaml ...``; anything else passes unchanged."""
    argv = list(argv)
    if argv[:2] == ["train", "file"]:
        if len(argv) < 3 or argv[2].startswith("-"):
            return ["train", "-f"]  # argparse then reports the missing file name.
        return ["train", "-f", *argv[2:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rllib`` console script."""
    return cli_main(translate(sys.argv[1:] if argv is None else argv), prog=PROG)


if __name__ == "__main__":
    sys.exit(main())

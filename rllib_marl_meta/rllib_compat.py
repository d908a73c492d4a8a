"""A small ``rllib`` command for the old RLlib workflow, running through ``rllib-marl-meta``.

RLlib's own ``rllib`` command line was removed from Ray (PR #46724). This one accepts its
file-based forms and hands them to :func:`rllib_marl_meta.cli.main`::

    rllib train file tuned_examples/maml/point_navigation.yaml [options]
    rllib train -f tuned_examples/maml/point_navigation.yaml [options]
    rllib train --algo MAML --env PointNavigation2D [options]
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
    """Old RLlib argument forms -> ``rllib-marl-meta`` arguments.

    ``train file X.yaml ...`` becomes ``train -f X.yaml ...``; everything else passes unchanged.
    """
    argv = list(argv)
    if len(argv) >= 2 and argv[0] == "train" and argv[1] == "file":
        if len(argv) < 3 or argv[2].startswith("-"):
            return ["train", "-f"]  # argparse then reports the missing file name.
        return ["train", "-f", argv[2], *argv[3:]]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``rllib`` console script."""
    return cli_main(translate(sys.argv[1:] if argv is None else argv), prog=PROG)


if __name__ == "__main__":
    sys.exit(main())

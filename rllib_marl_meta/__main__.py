"""``python -m rllib_marl_meta``: the same command line as the ``rllib-marl-meta`` script."""

import sys

from rllib_marl_meta.cli import main

if __name__ == "__main__":
    sys.exit(main())

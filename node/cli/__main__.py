"""``python -m node.cli``: the same as the ``intelshare`` command."""

from node.cli import main

main()

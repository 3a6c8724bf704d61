"""``python -m pgdurable.cli``: the same as the ``pgdurable`` console script."""

from pgdurable.cli import main

main()

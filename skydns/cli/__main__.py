"""``python -m skydns.cli``."""

from skydns.cli.runner import main

main()

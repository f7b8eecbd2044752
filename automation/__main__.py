"""`python -m automation`: see `automation.cli`."""

from automation.cli import main

main()

"""`python -m simlib` runs the command line."""

from simlib.cli import main

main()

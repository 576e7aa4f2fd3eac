"""`python -m jobrunner ...` is the `jobrunner` command."""

from jobrunner.cli import main

main()

"""The one ``memopt`` command: ``parser`` declares every subcommand, ``commands`` carries them out."""
from memopt.cli.commands import main

__all__ = ["main"]

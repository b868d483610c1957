"""The ``landquota`` command: a thin layer over the public API.

Each command is a function registered with :func:`landquota.cli.main.command`.
A new command group is a new module here plus one import line below; the
import order is the order of ``landquota --help``.
"""

# command groups in modules of their own: importing one registers its commands
from landquota.cli import pipeline  # noqa: F401  (issue 14: the key-project pipeline)
from landquota.cli.main import main

__all__ = ["main"]

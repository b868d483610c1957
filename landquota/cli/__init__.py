"""The ``landquota`` command: a thin layer over the public API.

Each command is a function registered with :func:`landquota.cli.main.command`.
``main.py`` holds the registry, the shared options and helpers, the parser and
the workspace, import and demand commands; every other command group is a
module of its own. A new command group is a new module here plus one import
line below; the import order is the order of ``landquota --help``.
"""

from landquota.cli.main import main

# command groups: importing one registers its commands, in this order in --help
# (so the order is kept by hand, not sorted)
# isort: off
from landquota.cli import allocation  # noqa: F401  (allocate, commit, revert)
from landquota.cli import ledger  # noqa: F401  (ledger, verify)
from landquota.cli import stock  # noqa: F401  (idle, linkage)
from landquota.cli import outputs  # noqa: F401  (map, report)
from landquota.cli import admin  # noqa: F401  (db, export, restore)
from landquota.cli import pipeline  # noqa: F401  (issue 14: the key-project pipeline)
# isort: on

__all__ = ["main"]

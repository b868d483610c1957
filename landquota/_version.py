"""The package version, in a module of its own.

Modules record it in runs and workspaces without importing the package's
``__init__`` (which names every layer).
"""

__version__ = "0.1.0"

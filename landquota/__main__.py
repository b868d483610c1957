"""``python -m landquota`` runs the command line."""

from landquota.cli import main

raise SystemExit(main())

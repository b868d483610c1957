"""Intake: reading source files into a workspace, and checking what is there.

``importer`` reads a file (encodings, CRS detection, field mapping) and loads it
into one layer atomically; ``validate`` runs the data-quality checks
(LQ-001…) on a workspace.
"""

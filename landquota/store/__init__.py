"""The store: one Workspace API over a GeoPackage file or a PostGIS schema.

``api`` opens or creates a workspace and picks the backend; ``workspace`` is the
abstract API and the canonical frame form; ``gpkg`` and ``postgis`` are the two
backends (they never import each other); ``ledger_check`` is the R6 check both
run inside their write lock; ``schema`` names every layer and code list;
``migrations``, ``roles``, ``stamps``, ``dburl`` and ``backup`` look after the
workspace. Nothing here imports the land rules or anything above them.
"""

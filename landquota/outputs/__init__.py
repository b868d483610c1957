"""What a bureau reads: the offline HTML map, the XLSX/CSV report, the summary.

``maps`` (with ``_mapjs`` and the vendored Leaflet in ``_vendor/``), ``reports``
and ``summary``. They read a workspace and the land rules' results; nothing
below imports them.
"""

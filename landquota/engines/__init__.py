"""Engines that run demand and compliance over a workspace's fixed sites.

``api.demand_from_workspace`` is the one entry point; ``local`` runs in this
process and ``dask`` per spatial partition on a Dask cluster, with identical
results. The rules they run live in :mod:`landquota.rules`, which never imports
an engine.
"""

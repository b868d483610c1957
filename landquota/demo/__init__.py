"""The synthetic Yangshan demo county (``landquota demo``): every layer of a workspace.

Split by what each module builds: ``base`` (the published figures, random streams
and shape helpers), ``county`` (the real outline in ``data/``, towns, rivers,
roads, plan zones), ``stock`` (stock land and linkage projects), ``towns`` (the
key projects' sites), ``parcels`` (survey patches and control lines),
``pipeline`` (staff, stages, meetings, monthly returns, visits) and ``build``
(:func:`~landquota.demo.build.build_demo`, :func:`~landquota.demo.build.demo_workspace`,
the projects and the opening ledger).
"""

"""Allocation of stock land and quota to key projects (R17–R18).

``model`` is the allocation itself (:func:`~landquota.allocation.model.allocate`,
the one public entry, and the reasons it gives); ``data`` the inputs and the result
it returns.  Behind them, from the top: ``greedy`` (the R18 walk) and ``optimal``
(optimal mode around the MILP: its input, its point made exact); ``parcels`` (stock
parcels by preference, and their assignment) and ``milp`` (the quota part's stages
and R18 tie-break); ``items`` (the validated projects and parcels in hundredths) and
``matching`` (the stock part, one LP); ``highs`` (HiGHS helpers).  ``runs`` plans,
saves, commits and reverts runs against the ledger, and ``scenarios`` compares runs
before and after a plan adjustment.
"""

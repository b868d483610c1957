"""Allocation of stock land and quota to key projects (R17–R18).

``model`` is the allocation itself (the greedy R18 walk and the data it works
on), ``milp`` the exact optimum, ``runs`` plans, saves, commits and reverts runs
against the ledger, and ``scenarios`` compares runs before and after a plan
adjustment.
"""

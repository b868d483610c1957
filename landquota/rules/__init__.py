"""The land rules (R1–R18), one module per concept.

``landclasses`` and ``areas`` (codes, ellipsoidal areas), ``overlay`` (site ∩
patch geometry), ``demand`` (R1–R4), ``compliance`` (R13–R15, approval level
R14), ``ledger`` (pools, balances, R5–R6), ``stock`` (R9–R12), ``linkage``
(R7–R8), ``adjustment`` (plan adjustment, R15–R16), ``bulletin`` (key-project
bulletin). They work on frames and a workspace; they never import an engine,
the allocation or the outputs.
"""

"""What every family's training shares (layer 2 of ``docs/architecture.md``): the divergence
rule, progress and plain gradient steps (``loop``), the result base and the callback contract
(``result``).
"""

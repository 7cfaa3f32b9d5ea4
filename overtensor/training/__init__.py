"""What every family's training shares (layer 2 of ``docs/architecture.md``): the one training
loop, the divergence rule, progress and the optimizer step (``loop``), the evaluation schedules
(``schedule``), the result base and the callback contract (``result``).
"""

"""Over-parameterized linear regression (Shah, Basu, Kyrillidis, Sanghavi; Shah, Kyrillidis,
Sanghavi; ``docs/theory/networks.md`` §2): problems, the row-space split and
``core.fit_regression``. A family package: it never imports ``tensors`` or ``networks``.
"""

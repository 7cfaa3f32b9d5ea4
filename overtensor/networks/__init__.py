"""Two-layer networks (Ghorbani, Mei, Misiakiewicz, Montanari, NeurIPS 2019;
``docs/theory/networks.md`` §1): the model (``model``), data models (``data``), exact quadratic
risks (``quadratic_risk``), training in any regime (``train.train_network``) and orthogonal layers
(``opt_layer``). A family package: it never imports ``tensors`` or ``regression``.
"""

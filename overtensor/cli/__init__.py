"""The ``overtensor`` command: parsing and printing only (``main``: ``fit``, ``demo`` and the
entry point; ``train``, ``moments``, ``experiment``: their subcommands; ``userdata``: reading user
files; ``exit_codes``: the documented exit codes). Layer 7 of ``docs/architecture.md``.
"""

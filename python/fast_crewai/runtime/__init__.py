"""The host side every interface package shares: :mod:`.backend` chooses
between the core and the pure-Python reference, :mod:`._wasm` (the only
module that imports ``wasmtime``) hosts the component, :mod:`.settings`
reads the ``FAST_CREWAI_*`` variables, :mod:`.filelock` serialises
processes on a database file, and :mod:`.patches` is the registry of
reversible CrewAI patches behind ``import fast_crewai.shim``.

Internal: the public names are re-exported from :mod:`fast_crewai`.
"""

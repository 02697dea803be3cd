"""``memory-search`` (``wit/memory-search.wit``): CrewAI's memory store on
the core.

Where a call goes: :class:`~._storage.AcceleratedMemoryStorage` (CrewAI's
``StorageBackend``) turns records and filters into JSON and calls one
:class:`~._contract.MemoryIndex` per database file and backend
(:mod:`._open`); that is :class:`~._core.WasmMemoryIndex` (the core's
``store`` resource, through :mod:`fast_crewai.runtime._wasm`) or
:class:`~._reference.PythonMemoryIndex` (the pure-Python reference,
reading input with :mod:`._reference_input` and indexing with
:mod:`._reference_table`). :mod:`._patch` registers the store with CrewAI's
storage factory; :mod:`._migrate` copies a LanceDB store into one.

This package imports neither CrewAI nor numpy until a store is used; the
public class is :class:`fast_crewai.AcceleratedMemoryStorage`.
"""

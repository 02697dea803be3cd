"""``sqlite-store`` (``wit/sqlite-store.wit``): SQLite files through the core.

Where a call goes: :class:`~._wrapper.AcceleratedSQLiteWrapper` holds the
host file lock and drives one connection, :class:`~._core.WasmConnection`
(the core's ``connection`` resource) or :class:`~._reference.PythonConnection`
(stdlib ``sqlite3`` with the same rules); both follow :mod:`._contract`.
:mod:`._task_outputs` is CrewAI's task-outputs store on the wrapper, and
:mod:`._patch` rebinds CrewAI's class to it.

The public names are :class:`fast_crewai.AcceleratedSQLiteWrapper` and
:class:`fast_crewai.AcceleratedTaskOutputsStorage`.
"""

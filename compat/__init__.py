"""The harness of ``build.py compat`` and the files it copies into CrewAI's tests."""

"""``message-serde`` (``wit/message-serde.wit``): strict agent messages.

:class:`AgentMessage` validates through the active backend: the core
(:mod:`._core`) or the pure-Python reference (:mod:`._reference`), both
implementing :mod:`._contract`.
"""

from ._message import AgentMessage

__all__ = ["AgentMessage"]

"""Local stand-ins for AWS and Kafka: ``bridge local`` and the servers it starts.

``LocalEndpoint`` runs ``bridge local`` as a child process; ``bridge.local.server.LocalServer``
runs it in this process; ``bridge.local.emulator`` is the Streams model with no I/O at all.
"""

from bridge.local.endpoint import ControlApiError, LocalEndpoint
from bridge.local.settings import LocalSettings

__all__ = ["ControlApiError", "LocalEndpoint", "LocalSettings"]

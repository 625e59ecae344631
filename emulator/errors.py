"""What goes wrong in the emulator and the ``agentorch`` client, under ``shared.errors``.

    ServiceError (shared)
    ├── ConfigError (shared)      a malformed compose file, a bad option
    ├── StartFailed               a service did not start or become healthy
    ├── NotRunning                no emulated stack in this state folder
    └── UpstreamUnavailable       a service could not be reached (shared)

The command line prints each as one line, never a traceback.
"""

from __future__ import annotations

from shared.errors import ServiceError


class StartFailed(ServiceError):
    """A service did not start or become healthy; the message ends with its last log lines."""


class NotRunning(ServiceError):
    """No stack is running from this state folder."""

"""What goes wrong in the emulator and the ``agentorch`` client, under ``shared.errors``.

    AgentOrchestratorError (shared)
    ├── ConfigError (shared)          a malformed compose file, a bad option
    ├── StartFailed                   a service did not start or become healthy
    ├── NotRunning                    no emulated stack in this state folder
    └── ServiceError (shared)
        ├── BadRequest (shared)       a bad --data
        └── UpstreamError (shared)    a service could not be reached, or failed
            └── KeyRefused            the gateway answered 401 to the key given (or to none)

The command line prints each as one line, never a traceback.
"""

from __future__ import annotations

from shared.errors import AgentOrchestratorError, UpstreamError


class StartFailed(AgentOrchestratorError):
    """A service did not start or become healthy; the message ends with its last log lines."""


class NotRunning(AgentOrchestratorError):
    """No stack is running from this state folder."""


class KeyRefused(UpstreamError):
    """The gateway (``GATEWAY_API_KEYS``) or the orchestrator (``ORCHESTRATOR_API_KEYS``)
    requires a key and refused what this client sent."""

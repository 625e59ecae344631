"""``GET /v1/models`` and ``GET /v1/models/{id}``: the routes and aliases the gateway serves, in
one shape that both SDK families parse (Anthropic's ``type``/``display_name``/``created_at``
and cursors beside OpenAI's ``object``/``created``/``owned_by``), so that
``client.models.list()`` and model pickers work from either.

The listed ids are the route names, the exact aliases, and the deployments' model ids that an
alias serves (a ``*`` pattern is no id, but any id it matches is found by
``GET /v1/models/{id}``). Release dates are unknown here, so ``created_at`` is the epoch, as
Anthropic's API documents for that case (OpenAI's ``created`` is 0).
``owned_by`` names the provider of the route's first deployment.
"""

from __future__ import annotations

from typing import Any

from functions.gateway.config import GatewayConfig
from shared.errors import BadRequest
from shared.http import Query

UNKNOWN_RELEASE = "1970-01-01T00:00:00Z"
DEFAULT_LIMIT, MAX_LIMIT = 20, 1000


class Catalog:
    def __init__(self, config: GatewayConfig) -> None:
        self._config = config
        # Routes, exact aliases, then the deployments' own model ids that an alias serves
        # (``claude-sonnet-4-5``): real ids for a model picker to offer.
        served = [
            d.model
            for route in config.routes.values()
            for d in route.deployments
            if config.route_for(d.model) is not None
        ]
        ids = list(config.routes) + [a for a in config.aliases if "*" not in a] + served
        self._ids = list(dict.fromkeys(ids))

    def model(self, model_id: str) -> dict[str, Any]:
        """The entry of ``model_id``: a route, an exact alias or an id a pattern matches."""
        route = self._config.route_for(model_id)
        if route is None:
            raise self._config.unknown_model(model_id)
        chain = ", ".join(d.name for d in self._config.routes[route].deployments)
        display = (
            f"{route} ({chain})" if route == model_id else f"{model_id} (route {route}: {chain})"
        )
        return {
            "type": "model",
            "id": model_id,
            "display_name": display,
            "created_at": UNKNOWN_RELEASE,
            "lifecycle": "active",
            "object": "model",
            "created": 0,
            "owned_by": self._config.routes[route].deployments[0].provider,
        }

    def page(self, query: Query) -> dict[str, Any]:
        """One page, with Anthropic's cursors: ``limit``, ``after_id``, ``before_id`` (an empty
        cursor is none)."""
        limit = query.integer("limit", default=DEFAULT_LIMIT, low=1, high=MAX_LIMIT)
        after_id, before_id = query.get("after_id"), query.get("before_id")
        ids = self._ids
        if after_id:
            ids = ids[_position(ids, after_id) + 1 :]
            page, has_more = ids[:limit], len(ids) > limit
        elif before_id:
            ids = ids[: _position(ids, before_id)]
            page, has_more = ids[-limit:], len(ids) > limit
        else:
            page, has_more = ids[:limit], len(ids) > limit
        return {
            "object": "list",
            "data": [self.model(model_id) for model_id in page],
            "has_more": has_more,
            "first_id": page[0] if page else None,
            "last_id": page[-1] if page else None,
        }


def _position(ids: list[str], cursor: str) -> int:
    try:
        return ids.index(cursor)
    except ValueError:
        raise BadRequest(f"no model {cursor[:100]!r} to page from") from None

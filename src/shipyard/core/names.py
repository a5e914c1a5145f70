"""Name rules shared by model groups, aliases, endpoints and variants (SageMaker's pattern)."""

from __future__ import annotations

import re

from shipyard.core.errors import InvalidRequestError

_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")


def check_name(kind: str, name: str) -> str:
    """Return ``name`` if it is 1-63 letters, digits and inner hyphens; else say why not."""
    if len(name) > 63 or not _NAME.match(name):
        raise InvalidRequestError(
            f"{kind} name {name!r} is not allowed: use 1-63 letters, digits and hyphens, "
            "starting and ending with a letter or digit"
        )
    return name

"""Every URL pattern of the project, found by walking the resolver, so that a page added
later is seen by the security tests without anyone remembering to list it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.urls import URLPattern, URLResolver, get_resolver

ARGUMENT = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>")


@dataclass(frozen=True)
class Pattern:
    key: str  # "namespace:name", or the route itself when the pattern has no name
    route: str
    callback: Callable[..., Any]

    @property
    def arguments(self) -> tuple[str, ...]:
        return tuple(a or b for a, b in ARGUMENT.findall(self.route))

    @property
    def named(self) -> bool:
        return self.key != self.route


def _walk(
    entries: Sequence[URLPattern | URLResolver], prefix: str = "", namespace: str = ""
) -> Iterator[Pattern]:
    for entry in entries:
        if isinstance(entry, URLResolver):
            inner = namespace
            if entry.namespace:
                inner = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner)
            continue
        route = prefix + str(entry.pattern)
        name = entry.name and (f"{namespace}:{entry.name}" if namespace else entry.name)
        yield Pattern(name or route, route, entry.callback)


def all_patterns() -> list[Pattern]:
    return list(_walk(get_resolver().url_patterns))

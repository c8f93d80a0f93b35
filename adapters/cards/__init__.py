"""Card processors: the `CardProcessor` protocol, its records and a registry of adapters.

A new processor is one module here plus one `register_card_processor` line below; nothing
outside `adapters/cards/` changes. Modules are imported on first use, so importing this
package opens nothing and pulls in no HTTP client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.cards.protocol import MAX_PAGE_SIZE, CardProcessor

__all__ = [
    "MAX_PAGE_SIZE",
    "CardProcessor",
    "card_processor_names",
    "create_card_processor",
    "register_card_processor",
]

CardProcessorFactory = Callable[..., CardProcessor]

_FACTORIES: dict[str, CardProcessorFactory] = {}


def register_card_processor(name: str, factory: CardProcessorFactory) -> None:
    """Make `create_card_processor(name, **config)` call `factory(**config)`."""
    _FACTORIES[name] = factory


def card_processor_names() -> list[str]:
    return sorted(_FACTORIES)


def create_card_processor(name: str, **config: Any) -> CardProcessor:
    """Build the adapter registered under `name`; `config` goes to its factory unchanged.

    Raises KeyError naming the known processors for an unknown name.
    """
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise KeyError(
            f"unknown card processor {name!r}; known: {card_processor_names()}"
        ) from None
    return factory(**config)


def _create_stripe(**config: Any) -> CardProcessor:
    from adapters.cards.stripe import StripeCardProcessor

    return StripeCardProcessor(**config)


register_card_processor("stripe", _create_stripe)

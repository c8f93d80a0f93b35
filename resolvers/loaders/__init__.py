"""Per-request dataloaders: built fresh for every request, bound to its tenant."""

from resolvers.loaders.ledger import LedgerLoaders

__all__ = ["LedgerLoaders"]

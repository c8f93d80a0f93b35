"""finance-gateway: one GraphQL endpoint over a double-entry ledger and financial providers."""

__version__ = "0.1.0"

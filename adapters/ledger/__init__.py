"""The double-entry ledger: tables, migrations, batched reads and the posting service."""

"""Example operations opened as tabs in GraphiQL: the canonical benchmark queries, a write,
a customer across the ledger and both providers, and the analysts' history, statement and
summary."""

from __future__ import annotations

__all__ = ["EXAMPLE_OPERATIONS"]

_DASHBOARD = """query Dashboard {
  customers(first: 10) {
    totalCount
    edges {
      node {
        id
        displayName
        ledgerAccounts(first: 5) {
          edges {
            node {
              id
              name
              currency
              balance {
                posted { amount currency }
                available { amount currency }
              }
            }
          }
        }
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

_STATEMENT = """# Paste a LedgerAccount id from the Dashboard tab into the variables: {"id": "..."}
query Statement($id: ID!) {
  ledgerAccount(id: $id) {
    name
    balance { posted { amount currency } pending { amount currency } }
    entries(first: 20) {
      edges {
        node {
          id
          direction
          amount { amount currency }
          transaction { id description status postedAt }
        }
      }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

_LOOKUP = """# Paste a Customer id from the Dashboard tab into the variables: {"id": "..."}
query Lookup($id: ID!) {
  customer(id: $id) {
    id
    displayName
    kind
    createdAt
  }
}
"""

_POST = """# Move 12.50 USD between two accounts of the same currency (ids from the Dashboard tab).
# Sending it again with the same idempotencyKey returns the first result (replayed: true).
mutation Transfer($from: ID!, $to: ID!) {
  postLedgerTransaction(input: {
    idempotencyKey: "graphiql-example-1"
    description: "Transfer from GraphiQL"
    entries: [
      { accountId: $from, direction: CREDIT, amount: "12.50", currency: "USD" }
      { accountId: $to, direction: DEBIT, amount: "12.50", currency: "USD" }
    ]
  }) {
    replayed
    transaction { id status entries { direction amount { amount currency } } }
  }
}
"""

_PROVIDERS = """# One customer's ledger, bank accounts (banking provider) and card payments.
# If a provider is down, only its field is null, with an error that names it.
query Customer360 {
  customers(first: 3) {
    edges {
      node {
        displayName
        ledgerAccounts(first: 3) { edges { node { name balance { posted { amount currency } } } } }
        bankAccounts {
          name
          mask
          type
          balances { current { amount currency } available { amount currency } }
          provider
          fetchedAt
          transactions(first: 5) { edges { node { amount { amount currency } } } }
        }
        cardPayments(first: 5) {
          edges { node { amount { amount currency } status card { brand last4 } provider } }
        }
      }
    }
  }
}
"""

_HISTORY = """# A year of daily closing balances of one account, and its balance at one moment.
# Paste a LedgerAccount id from the Dashboard tab into the variables: {"id": "..."}
query History($id: ID!) {
  ledgerAccount(id: $id) {
    name
    currency
    balanceAt(asOf: "2026-06-30T23:59:59Z") { posted { amount currency } }
    balanceHistory(from: "2026-01-01", to: "2026-12-31", interval: DAY) {
      periodStart
      periodEnd
      closing { posted { amount } pending { amount } available { amount } }
    }
  }
}
"""

_PERIOD = """# March's statement of one account: opening + debits and credits = closing.
# Paste a LedgerAccount id from the Dashboard tab into the variables: {"id": "..."}
query PeriodStatement($id: ID!) {
  ledgerAccount(id: $id) {
    name
    statement(from: "2026-03-01", to: "2026-03-31") {
      from
      to
      opening { posted { amount currency } }
      totals { debits { amount } credits { amount } }
      closing { posted { amount currency } }
      entries(first: 20) {
        edges { node { direction amount { amount } transaction { description effectiveAt } } }
        pageInfo { hasNextPage endCursor }
      }
    }
  }
}
"""

_SUMMARY = """# Sums and counts of the tenant's entries by month, customer kind and direction,
# always per currency (amounts of different currencies are never added up).
query Summary {
  ledgerSummary(
    from: "2026-01-01"
    to: "2026-12-31"
    interval: MONTH
    groupBy: [PERIOD, CUSTOMER_KIND, DIRECTION]
  ) {
    edges {
      node {
        periodStart
        currency
        customerKind
        direction
        debits { amount }
        credits { amount }
        entryCount
      }
    }
    pageInfo { hasNextPage endCursor }
  }
}
"""

EXAMPLE_OPERATIONS: list[tuple[str, str]] = [
    ("Dashboard", _DASHBOARD),
    ("Statement", _STATEMENT),
    ("Lookup", _LOOKUP),
    ("Transfer", _POST),
    ("Customer360", _PROVIDERS),
    ("History", _HISTORY),
    ("PeriodStatement", _PERIOD),
    ("Summary", _SUMMARY),
]

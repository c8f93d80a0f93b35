"""Data-subject rights over the gateway's own tables (GDPR access and erasure; PCI DSS scope).

`export` gathers everything held about one customer as one JSON-ready document; `erasure`
erases or pseudonymises the customer's personal data while the ledger keeps every amount;
`pan` finds card numbers (Luhn-valid digit runs) in text, bytes and whole databases.
Cache purges of the erased data are the gateway's part (gateway/privacy.py): the cached
shapes are known there, not here.
"""

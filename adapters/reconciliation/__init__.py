"""Reconciliation: processor settlements booked into the ledger and matched to bank credits."""

"""The audit trail: an append-only record of unmasked personal-data reads and ledger writes.

`records` holds the plain records and the per-request buffer, `tables` the `audit_events`
table, `store` the one-statement insert and the tenant-scoped listing. On PostgreSQL a
trigger refuses UPDATE, DELETE and TRUNCATE of the table for every role (migration
0007_audit), and `app_role.sql` creates an application role that may only INSERT and SELECT it.
"""

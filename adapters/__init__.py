"""The edge of the gateway: SQL and provider HTTP APIs, returning plain domain records.

Nothing here knows GraphQL or the HTTP requests made to the gateway.
"""

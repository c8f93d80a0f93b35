"""Who may call the gateway: API clients (tenant, scopes, operation policy, hashed keys) and
the trusted documents each client registered. Knows nothing of GraphQL or HTTP."""

"""The GraphQL schema: Strawberry types and resolvers. Resolvers never run SQL or HTTP;
they ask the loaders in the request context."""

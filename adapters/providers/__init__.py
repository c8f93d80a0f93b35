"""What the provider adapters share: the links from our customers to provider objects."""

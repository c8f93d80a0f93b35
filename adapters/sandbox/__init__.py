"""Local emulations of provider HTTP APIs: seeded data, fault injection, in-process or HTTP."""

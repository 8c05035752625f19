"""Smart charging: the site model, the allocator and the profile builder (pure), and the
service that runs the rebalancing tick and sends SetChargingProfile (I/O)."""

"""Model definitions. Model files know nothing of ranks, devices or Ray."""

"""Repository watches and tag policies (Flux semantics)."""

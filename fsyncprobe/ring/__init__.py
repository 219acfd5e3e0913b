"""The token ring: Corosync facts and settings, and the model that turns measured stalls into
cluster consequences (shared/DESIGN.md, "Token-ring model")."""

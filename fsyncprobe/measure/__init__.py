"""Measuring: the engine that runs one workload in a private temp dir, its timed hot loop, the
workloads, the scheduling probe and the block-layer counters (shared/DESIGN.md, "Workloads")."""

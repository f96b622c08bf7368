"""The worker: KCL's scheduler and lease coordinator, one role per module (ARCHITECTURE.md)."""

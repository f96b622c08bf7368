"""Leases: who reads which shard, and how far they got."""

"""The pure core: shard lineage, positions, lease balancing and retry decisions.

Nothing here imports asyncio or an AWS library, and nothing reads the clock: time is passed
in. That is what lets the hard decisions be tested densely, with hypothesis and virtual time.
"""

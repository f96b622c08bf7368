"""bridge: read DynamoDB Streams with a cluster of workers and apply every change to a processor."""

__version__ = "0.1.0"

"""Local stand-ins for AWS and Kafka: ``bridge local`` and the servers it starts."""

"""The deployment artifacts: the Helm chart, its values schema and the container image."""

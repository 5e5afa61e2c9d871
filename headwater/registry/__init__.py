"""The model registry: versions, the production pointer, the quality gate."""

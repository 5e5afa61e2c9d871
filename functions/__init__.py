"""AWS Lambda handlers: thin adapters over headwater.pipeline."""

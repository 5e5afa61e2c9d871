"""AWS Lambda handlers: thin adapters over headwater.data.pipeline."""

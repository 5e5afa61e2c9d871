"""One blueprint per resource: health, model, predictions, docs."""

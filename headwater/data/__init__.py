"""The data half: sources, the lake, contracts, extraction and cleaning."""

"""Readers that turn a file (or hub dataset) into `Conversation`s: one module per source format."""

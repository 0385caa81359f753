"""The chat session, its graph view and the command line."""

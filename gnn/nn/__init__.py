"""The graph model: name-free node tokens, the graph transformer, its task heads and the shipped checkpoint."""

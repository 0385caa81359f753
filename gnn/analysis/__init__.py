"""Reading a graph: summaries (parameters, FLOPs, outline) and the heads of its attention."""

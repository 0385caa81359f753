"""MAD's graph side: the IR, importers, validation, exporters and summaries."""

"""Importers: model sources -> :class:`~gnn.ir.Graph`."""

"""Exact, export-friendly tensor ops shared by the deploy twins and the export-time rewrites."""

"""Backends behind one small interface: `activate / infer / close`, usable as a context manager."""

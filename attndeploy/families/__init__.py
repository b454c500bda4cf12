"""One file per attention family: the reference module (faithful to the paper and its
official code, so checkpoints load) first, then its deploy twin (same ``state_dict``,
export-friendly ``forward``). Each family is registered in `attndeploy.registry`.
"""

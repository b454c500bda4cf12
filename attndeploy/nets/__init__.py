"""Small host networks that carry zoo attention modules, for whole-network export tests and recipes."""

from attndeploy.nets.host import HostNet, build_host

__all__ = ["HostNet", "build_host"]

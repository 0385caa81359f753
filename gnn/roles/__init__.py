"""Structural roles (``attn.q``, ``mlp.down``, ``norm.final``, ...) of a graph's parts."""

from gnn.roles.base import LABELERS, RoleMap, label, register
from gnn.roles.vocab import ROLES, check_role

__all__ = ["LABELERS", "ROLES", "RoleMap", "check_role", "label", "register"]

"""Structural roles (``attn.q``, ``mlp.down``, ``norm.final``, ...) of a graph's parts."""

from gnn.roles import learned, rules  # noqa: E402,F401 - importing them registers "learned" and "rules"
from gnn.roles.base import LABELERS, RoleMap, label, register
from gnn.vocab import ROLES, check_role

__all__ = ["LABELERS", "ROLES", "RoleMap", "check_role", "label", "register"]

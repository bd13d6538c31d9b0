"""Who may do what: the scopes of API keys, the caller a request is made by (`Principal`), and
the check of an operation's need against it. Pure: no I/O.

The keys of ADMIN_API_KEYS are root keys: every scope, in the workspace `default`, and the
management of workspaces. Keys made through the API (or `python -m admin keys create`) act in
one workspace, with the scopes they were given.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal, get_args

from admin.exceptions import Forbidden
from redirector.store.keys import DEFAULT_WORKSPACE

Scope = Literal[
    "campaigns:read",
    "campaigns:write",
    "links:read",
    "links:write",
    "stats:read",
    "events:write",  # sends and conversions (a later issue)
    "keys:admin",
]
SCOPES: tuple[Scope, ...] = get_args(Scope)
# What an operation needs: a scope, or a root key ("root": workspaces and their keys).
Access = Scope | Literal["root"]

# The prefix of every key the service makes: secret scanners can recognise a leaked one.
KEY_PREFIX = "smsl_"
ROOT_KEY_PREFIX = "root-"


def key_digest(key: bytes) -> str:
    """The SHA-256 of a key, hex: what is stored of it, and what finds it."""
    return hashlib.sha256(key).hexdigest()


def root_key_id(digest: str) -> str:
    """A root key's id (in the audit log): stable while the key stays in ADMIN_API_KEYS, and
    48 bits of its hash, which say nothing useful about the key."""
    return ROOT_KEY_PREFIX + digest[:12]


@dataclass(frozen=True, slots=True)
class Principal:
    """The key a request was authenticated with."""

    key_id: str
    workspace: str
    scopes: frozenset[str]
    root: bool = False

    def may(self, needed: Access) -> bool:
        return self.root or (needed != "root" and needed in self.scopes)

    def check(self, needed: Access | None) -> None:
        """Raises Forbidden unless the key may do what `needed` names (None: any key may)."""
        if needed is not None and not self.may(needed):
            raise Forbidden(needed)

    def sees(self, workspace: str) -> bool:
        """Whether the key may act in `workspace`: its own; root keys, in every one."""
        return self.root or workspace == self.workspace


def needs_key(path: str) -> bool:
    """Whether a request to `path` needs a key: everything under /api/."""
    return path.startswith("/api/")


# Where the dashboard's pages are (admin/dashboard): HTML for people signed in with a key,
# no part of the API (nor of its OpenAPI document).
DASHBOARD_PREFIX = "/dashboard"


def is_dashboard(path: str) -> bool:
    return path == DASHBOARD_PREFIX or path.startswith(DASHBOARD_PREFIX + "/")


def root_principal(digest: str) -> Principal:
    return Principal(root_key_id(digest), DEFAULT_WORKSPACE, frozenset(SCOPES), root=True)

"""Domain errors raised by the admin core; `admin.errors` maps them to HTTP responses.

AdminError
├── NotAuthenticated        401  no key, a malformed one, or not a key (revoked, expired)
├── Forbidden               403  the key lacks the scope the operation needs
├── RateLimited             429  the key made ADMIN_RATE_LIMIT requests in its window
├── ValidationFailed        422  one or more fields are invalid (each named, with batch index)
├── NotFound                404  also what another workspace's campaign, link or key is
│   ├── CampaignNotFound
│   ├── LinkNotFound
│   ├── WorkspaceNotFound
│   ├── KeyNotFound
│   └── ConversionNotFound
└── CodeTaken               409  a custom code is already in use
"""

from __future__ import annotations

from dataclasses import dataclass


class InvalidURL(ValueError):
    """The URL to shorten breaks one of the validation rules; the message says which. Raised by
    the pure `admin.tagging` functions, a ValueError so that pydantic validators can raise it."""


class Contention(RuntimeError):
    """Concurrent writers kept changing the same keys; the caller may retry (409). Not a fault
    of the request, hence not an AdminError."""


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # dotted path, e.g. "url" or "links[3].url"
    message: str
    index: int | None = None  # position in a batch, when the field is inside one


class AdminError(Exception):
    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotAuthenticated(AdminError):
    code = "unauthorized"

    def __init__(self) -> None:
        # One message whatever was wrong: a caller learns nothing about which keys exist.
        super().__init__("send 'Authorization: Bearer <key>' with a valid API key")


class Forbidden(AdminError):
    code = "forbidden"

    def __init__(self, needed: str) -> None:
        what = "a root key (ADMIN_API_KEYS)" if needed == "root" else f"the scope {needed}"
        super().__init__(f"this operation needs {what}")
        self.needed = needed


class RateLimited(AdminError):
    code = "rate_limited"

    def __init__(self, limit: int, window: int, retry_after: int) -> None:
        super().__init__(
            f"this key made its {limit} requests of {window} s; try again in {retry_after} s"
        )
        self.retry_after = retry_after  # whole seconds until the key's window ends


class ValidationFailed(AdminError):
    code = "validation_failed"

    def __init__(self, errors: list[FieldError]) -> None:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(f"{first.field}: {first.message}{more}")
        self.errors = errors


class NotFound(AdminError):
    code = "not_found"


class CampaignNotFound(NotFound):
    code = "campaign_not_found"

    def __init__(self, campaign_id: int | str) -> None:
        super().__init__(f"no campaign with id {campaign_id}")


class LinkNotFound(NotFound):
    code = "link_not_found"

    def __init__(self, code: str) -> None:
        super().__init__(f"no link with code {code!r}")


class CodeTaken(AdminError):
    code = "code_taken"

    def __init__(self, code: str, index: int | None = None) -> None:
        where = f"links[{index}].code: " if index is not None else ""
        super().__init__(f"{where}code {code!r} is already taken")
        self.taken_code = code
        self.index = index


class WorkspaceNotFound(NotFound):
    code = "workspace_not_found"

    def __init__(self, workspace_id: str) -> None:
        super().__init__(f"no workspace with id {workspace_id!r}")


class KeyNotFound(NotFound):
    code = "key_not_found"

    def __init__(self, key_id: str) -> None:
        super().__init__(f"no API key with id {key_id!r}")


class ConversionNotFound(NotFound):
    code = "conversion_not_found"

    def __init__(self, order_id: str) -> None:
        super().__init__(f"no conversion with order id {order_id!r}")

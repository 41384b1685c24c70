"""The one error tree of modelmeta: every error we raise on purpose derives from ModelmetaError."""

from __future__ import annotations


class ModelmetaError(Exception):
    """Base class of every error modelmeta raises on purpose."""


class ConfigError(ModelmetaError):
    """An environment variable holds a value modelmeta cannot use."""


class UpstreamError(ModelmetaError):
    """The upstream source could not deliver a usable document."""


class UpstreamUnavailable(UpstreamError):
    """The upstream could not be reached or kept failing (network error, timeout, 5xx)."""


class UpstreamRejected(UpstreamError):
    """The upstream answered with a status that retrying will not fix (4xx other than 429)."""


class DocumentTooLarge(UpstreamError):
    """The upstream body is larger than the configured size cap."""


class MalformedDocument(UpstreamError):
    """The upstream body is not valid JSON of the models.dev shape."""


class IntegrityGuardTripped(UpstreamError):
    """The new document would remove more than half of the listed models."""


class RateLimited(ModelmetaError):
    """The upstream host's budget is spent for longer than we wait in-process."""

    def __init__(self, host: str, delay: float) -> None:
        super().__init__(f"rate limit for {host} spent; next slot in {delay:.2f}s")
        self.host = host
        self.delay = delay


class NotFound(ModelmetaError):
    """The requested resource does not exist."""


class BadRequest(ModelmetaError):
    """The request is malformed; invalid_params says which parameters and why."""

    def __init__(self, detail: str, invalid_params: list[tuple[str, str]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.invalid_params = invalid_params or []


class Unauthorized(ModelmetaError):
    """An admin route was called without a bearer token."""


class Forbidden(ModelmetaError):
    """An admin route was called with a token that is not one of ADMIN_TOKENS."""


class PayloadTooLarge(ModelmetaError):
    """A request body is over the size cap."""


class Redirect(ModelmetaError):
    """The resource lives at another URL (a bare model id that exactly one provider lists)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


class Ambiguous(ModelmetaError):
    """A bare model id that several providers list: `choices` holds their canonical ids."""

    def __init__(self, detail: str, choices: list[str]) -> None:
        super().__init__(detail)
        self.choices = choices


class TargetRefused(ModelmetaError):
    """A webhook URL that modelmeta will not call: not http(s), or a host on a loopback, private,
    link-local, multicast or reserved address (unless WEBHOOK_ALLOW_PRIVATE=true)."""


class HistoryImportError(ModelmetaError):
    """import-history cannot go on; the message names the file and says what was written."""

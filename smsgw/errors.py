"""The gateway's exceptions.

    SmsgwError
    ├── RequestError                  a carrier's request we refuse: a 4xx, never a 5xx
    │   ├── BadRequest                400  bad JSON, missing field, wrong type, invalid UTF-8, ...
    │   ├── Unauthorized              401  missing or wrong signature
    │   ├── UnknownCarrier            404  no carrier of that name is configured
    │   ├── PayloadTooLarge           413  a body over the size limit (64 KiB)
    │   └── UnsupportedMediaType      415  a content type the carrier's format does not use
    ├── Unavailable                   503  the gateway cannot take messages now (shutting down, store down)
    ├── DeliveryError                 an MT send that did not get a 2xx
    │   ├── TemporaryDeliveryError    retried with back-off (5xx, 4xx, timeouts, refused connections)
    │   └── PermanentDeliveryError    cannot succeed by retrying (no usable mt_url): failed at once
    ├── ReplayError                   a running server answered `smsgw replay --url` with something else than replies
    ├── ConfigError (settings.py)     a configuration file or SMSGW_ variable refused: `file: key: reason`
    ├── StoreError (store/errors.py)  a database that cannot be used as one
    ├── ImportFailed (csvfile.py)     a CSV file or row refused, nothing loaded
    │   └── FaqImportError (faq.py)
    ├── TranscriptError (transcripts.py)  a transcript line that is not a message nor a reply
    ├── InvalidPhone (phones.py)      not a Vietnamese phone number
    └── UserError (cli_checks.py)     a command-line input refused before any work

Every SmsgwError's message says what and where; `describe()` is how the command line shows it
(`smsgw: <describe()>`, exit 1), so `cli.main` catches this one class. Those that are wrong
values (ConfigError, TranscriptError, InvalidPhone, FaqImportError) are ValueErrors too.

Every RequestError carries the HTTP `status`, a short machine `kind` (the metrics label) and
`reason`, the human sentence returned as `{"error": reason}`.
"""

from __future__ import annotations


class SmsgwError(Exception):
    def describe(self) -> str:
        """The line the command line prints after `smsgw: `."""
        return str(self)


class RequestError(SmsgwError):
    status = 400
    default_kind = "bad_request"

    def __init__(self, reason: str, *, kind: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind or self.default_kind


class BadRequest(RequestError):
    status = 400


class Unauthorized(RequestError):
    status = 401
    default_kind = "bad_signature"


class UnknownCarrier(RequestError):
    status = 404
    default_kind = "unknown_carrier"


class PayloadTooLarge(RequestError):
    status = 413
    default_kind = "too_large"


class UnsupportedMediaType(RequestError):
    status = 415
    default_kind = "content_type"


class Unavailable(SmsgwError):
    status = 503


class DeliveryError(SmsgwError):
    pass


class TemporaryDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class ReplayError(SmsgwError):
    pass

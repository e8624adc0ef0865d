"""The adapter registry: the one place that knows the adapters' names (installed as `smsgw.adapters`).

A carrier's `adapter` key names one of them; each module holds the adapter class (a
`smsgw.carrier.CarrierAdapter`) and its settings model (a `smsgw.settings.CarrierSettings`, the
class's `settings`). A new adapter is a module here and a line below. The modules are imported
only when a carrier uses them.
"""

from __future__ import annotations

ADAPTERS = {
    "generic": "smsgw.adapters.generic:GenericAdapter",
    "mock": "smsgw.adapters.mock:MockAdapter",
    "kannel": "smsgw.adapters.kannel:KannelAdapter",
    "vn-cp": "smsgw.adapters.vn_cp:VnCpAdapter",
    "twilio": "smsgw.adapters.twilio:TwilioAdapter",
}
DEFAULT_ADAPTER = "generic"                  # a carrier table without an `adapter` key
TIMESTAMP_ADAPTERS = ("generic", "mock")     # the adapters signing with X-Smsgw-Timestamp


class UnknownAdapter(LookupError):
    pass


def adapter_path(name: str) -> str:
    """`module:Class` of the adapter called `name`, or `UnknownAdapter` listing the known names."""
    try:
        return ADAPTERS[name]
    except (KeyError, TypeError):
        raise UnknownAdapter(f"unknown adapter {name!r} (known: {', '.join(ADAPTERS)})") from None

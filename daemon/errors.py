"""Every error Hearth reports to a client.

Each class carries a stable JSON-RPC error ``code`` and a short ``kind`` name that
clients match on (never on the message text)::

    HearthError
    ├── ProtocolError            standard JSON-RPC errors
    │   ├── ParseError           -32700  the line is not JSON
    │   ├── InvalidRequest       -32600  JSON, but not a JSON-RPC request
    │   ├── MethodNotFound       -32601
    │   ├── InvalidParams        -32602
    │   └── LineTooLong          -32000  a line over the size limit (connection closed)
    ├── UnsupportedProtocol      -32010  hello with a protocol version we do not speak
    ├── ModelNotFound            -32011
    ├── InvalidModel             -32012  a model file that fails validation
    ├── EngineUnavailable        -32013  engine not installed / cannot run this model
    ├── Busy                     -32014  the model's queue is full: retry later
    ├── Cancelled                -32015
    ├── ContextTooLong           -32016
    ├── RunnerFailed             -32017  the model process crashed or was killed
    ├── NotEnoughMemory          -32018  the model cannot fit in the memory available now
    ├── StructuredOutputFailed   -32019  an answer held to a format ended before its JSON closed
    ├── VaultLocked              -32020
    ├── IntegrityError           -32021  a stored record failed authentication
    ├── StorageFull              -32022  the disk is full: nothing was stored
    ├── WrongPassphrase          -32023
    ├── NotFound                 -32024  a conversation or other record does not exist
    ├── EgressDenied             -32030  the network policy refused an outbound call
    ├── EgressFailed             -32031  an allowed outbound call failed
    ├── PermissionDenied         -32040
    ├── PluginFailed             -32041  a plugin raised, crashed or could not be loaded
    ├── PluginLimit              -32042  a plugin hit a limit (memory, cpu, processes, timeout)
    ├── NotAvailable             -32043  this machine lacks what was asked (a clipboard, a sandbox)
    └── DaemonUnavailable        -32050  (client side) no daemon answers and none could start
"""

from __future__ import annotations

from typing import Any


class HearthError(Exception):
    """Base class: a message for the user plus optional structured ``data``."""

    code = -32099
    kind = "error"

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_rpc(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "data": {"kind": self.kind, **self.data},
        }


class ProtocolError(HearthError):
    pass


class ParseError(ProtocolError):
    code, kind = -32700, "parse_error"


class InvalidRequest(ProtocolError):
    code, kind = -32600, "invalid_request"


class MethodNotFound(ProtocolError):
    code, kind = -32601, "method_not_found"


class InvalidParams(ProtocolError):
    code, kind = -32602, "invalid_params"


class LineTooLong(ProtocolError):
    code, kind = -32000, "line_too_long"


class UnsupportedProtocol(HearthError):
    code, kind = -32010, "unsupported_protocol"


class ModelNotFound(HearthError):
    code, kind = -32011, "model_not_found"


class InvalidModel(HearthError):
    code, kind = -32012, "invalid_model"


class EngineUnavailable(HearthError):
    code, kind = -32013, "engine_unavailable"


class Busy(HearthError):
    code, kind = -32014, "busy"


class Cancelled(HearthError):
    code, kind = -32015, "cancelled"


class ContextTooLong(HearthError):
    code, kind = -32016, "context_too_long"


class RunnerFailed(HearthError):
    code, kind = -32017, "runner_failed"


class NotEnoughMemory(HearthError):
    code, kind = -32018, "not_enough_memory"


class StructuredOutputFailed(HearthError):
    """An answer held to ``options.format`` could not be completed as valid JSON (the
    token limit came first, or it began to loop): never passed on as an answer."""

    code, kind = -32019, "structured_output_failed"


class VaultLocked(HearthError):
    code, kind = -32020, "vault_locked"


class IntegrityError(HearthError):
    code, kind = -32021, "integrity_error"


class StorageFull(HearthError):
    code, kind = -32022, "storage_full"


class WrongPassphrase(HearthError):
    code, kind = -32023, "wrong_passphrase"


class NotFound(HearthError):
    code, kind = -32024, "not_found"


class EgressDenied(HearthError):
    code, kind = -32030, "egress_denied"


class EgressFailed(HearthError):
    code, kind = -32031, "egress_failed"


class PermissionDenied(HearthError):
    code, kind = -32040, "permission_denied"


class PluginFailed(HearthError):
    code, kind = -32041, "plugin_failed"


class PluginLimit(HearthError):
    code, kind = -32042, "plugin_limit"


class NotAvailable(HearthError):
    code, kind = -32043, "not_available"


class DaemonUnavailable(HearthError):
    code, kind = -32050, "daemon_unavailable"


def all_errors() -> list[type[HearthError]]:
    """Every concrete error class, for docs and for clients mapping codes back to classes."""
    found: list[type[HearthError]] = []
    pending: list[type[HearthError]] = [HearthError]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.kind != cls.kind:
                found.append(sub)
    return sorted(found, key=lambda c: -c.code)


def from_rpc(error: dict[str, Any]) -> HearthError:
    """Rebuild the typed error a server sent (client side)."""
    data = dict(error.get("data") or {})
    kind = data.pop("kind", None)
    for cls in all_errors():
        if cls.kind == kind or (kind is None and cls.code == error.get("code")):
            return cls(str(error.get("message", "")), **data)
    return HearthError(str(error.get("message", "")), **data)

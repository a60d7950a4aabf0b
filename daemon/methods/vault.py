"""vault.*: is the vault open, and the key changes (init, unlock, rotate).

Passphrases arrive in params over the private socket; they are handed to scrypt and
never stored, logged or echoed back (errors name the field, never the value).
"""

from __future__ import annotations

import asyncio
from typing import Any

from daemon.errors import InvalidParams
from daemon.methods.history import flag
from daemon.rpc import Call, Register


def _passphrase(params: dict[str, Any], required: bool) -> str | None:
    value = params.get("passphrase")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidParams("passphrase must be a non-empty string", field="passphrase")
    return value


async def status(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    return await asyncio.to_thread(call.app.vault.status)


async def init(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.to_thread(call.app.vault.init, _passphrase(params, required=False))
    return await status(call, params)


async def unlock(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.to_thread(call.app.vault.unlock, _passphrase(params, required=False))
    await asyncio.to_thread(call.app.vault.purge_expired)  # the sweep it missed while locked
    return await status(call, params)


async def rotate(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    await asyncio.to_thread(
        call.app.vault.rotate,
        _passphrase(params, required=False),
        flag(params, "keychain", False),
        flag(params, "reencrypt", False),
    )
    return await status(call, params)


def register(add: Register) -> None:
    add("vault.status", status)
    add("vault.init", init)
    add("vault.unlock", unlock)
    add("vault.rotate", rotate)

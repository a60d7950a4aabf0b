"""conversations.* and settings.*, and what a chat keeps in the vault.

A chat names its conversation (or starts one); the daemon replays the stored turns
before the new messages and, once the answer is complete, stores the new messages and
the answer in one transaction *before* the response is sent. So every answer a client
received is on disk, and a turn is never half stored. Vault calls block (SQLite, fsync,
scrypt), so they run in worker threads, off the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from daemon.app import App
from daemon.errors import InvalidParams
from daemon.methods import params as p
from daemon.rpc import Call, Register
from daemon.vault import Vault
from daemon.vault.service import SETTINGS, check_setting, known_setting

TITLE_CHARS = 80


def flag(params: dict[str, Any], key: str, default: bool) -> bool:
    value = params.get(key, default)
    if not isinstance(value, bool):
        raise InvalidParams(f"{key} must be true or false", field=key)
    return value


# -- chat turns ------------------------------------------------------------------------


@dataclass
class Turn:
    """One chat request's place in the history."""

    prompt: list[dict[str, str]]  # the stored turns, then the new messages
    new: list[dict[str, str]]  # what the client sent
    vault: Vault | None  # where to store the turn; None stores nothing
    conversation_id: str | None

    @property
    def title(self) -> str:
        first = next((m["content"] for m in self.new if m["role"] == "user"), "")
        line = first.strip().split("\n", 1)[0]
        return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"


async def begin_turn(app: App, params: dict[str, Any]) -> Turn:
    """Check where the chat is kept and build its prompt. A locked vault raises
    VaultLocked, unless the request stores nothing and continues no conversation."""
    new = p.messages(params)
    store = flag(params, "store", True)
    conv_id = p.optional_str(params, "conversation_id")
    if not store and conv_id is None:
        return Turn(new, new, None, None)  # leaves no trace: the vault is not even asked
    vault = await asyncio.to_thread(app.vault.require)
    if store:
        keep = SETTINGS["keep_history"]
        store = bool(await asyncio.to_thread(vault.get_setting, "keep_history", keep))
    history: list[dict[str, str]] = []
    if conv_id is not None:
        stored = await asyncio.to_thread(vault.get_conversation, conv_id)
        history = [{"role": m["role"], "content": m["content"]} for m in stored["messages"]]
    return Turn(history + new, new, vault if store else None, conv_id)


async def finish_turn(turn: Turn, result: dict[str, Any]) -> dict[str, Any]:
    """Store the new messages and the answer (all or nothing), then say where."""
    if turn.vault is None:
        return {**result, "conversation_id": turn.conversation_id, "stored": False}
    messages = [(m["role"], m["content"]) for m in turn.new]
    if result["text"]:  # a cancelled answer keeps what was generated, if anything
        messages.append(("assistant", result["text"]))
    conv_id, _ = await asyncio.to_thread(
        turn.vault.add_turn, turn.conversation_id, messages, turn.title
    )
    return {**result, "conversation_id": conv_id, "stored": True}


# -- conversations.* -------------------------------------------------------------------


async def _vault(call: Call) -> Vault:
    return await asyncio.to_thread(call.app.vault.require)


async def conversations_list(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    vault = await _vault(call)
    return {"conversations": await asyncio.to_thread(vault.list_conversations)}


async def conversations_get(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    conv_id = p.required_str(params, "id")
    vault = await _vault(call)
    conversation: dict[str, Any] = await asyncio.to_thread(vault.get_conversation, conv_id)
    return conversation


async def conversations_delete(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    conv_id = p.required_str(params, "id")
    vault = await _vault(call)
    await asyncio.to_thread(vault.delete_conversation, conv_id)
    return {"id": conv_id, "deleted": True}


async def conversations_search(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    text = p.required_str(params, "text")
    limit = params.get("limit", 100)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 10_000:
        raise InvalidParams("limit must be an integer from 1 to 10000", field="limit")
    vault = await _vault(call)
    return {"results": await asyncio.to_thread(vault.search, text, limit)}


async def conversations_export(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    conv_id = p.required_str(params, "id")
    vault = await _vault(call)
    exported: dict[str, Any] = await asyncio.to_thread(vault.export, conv_id)
    return exported


# -- settings.* ------------------------------------------------------------------------


async def settings_get(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    key = p.optional_str(params, "key")
    service = call.app.vault
    if key is not None:
        known_setting(key)
        return {"key": key, "value": await asyncio.to_thread(service.setting, key)}
    values = {k: await asyncio.to_thread(service.setting, k) for k in SETTINGS}
    return {"settings": values}


async def settings_set(call: Call, params: dict[str, Any]) -> dict[str, Any]:
    key = p.required_str(params, "key")
    if "value" not in params:
        raise InvalidParams("value is required", field="value")
    value = check_setting(key, params["value"])
    vault = await _vault(call)
    await asyncio.to_thread(vault.set_setting, key, value)
    result: dict[str, Any] = {"key": key, "value": value}
    if key == "retention_days":  # takes effect now, not at the next sweep
        result["purged"] = await asyncio.to_thread(call.app.vault.purge_expired)
    return result


def register(add: Register) -> None:
    add("conversations.list", conversations_list)
    add("conversations.get", conversations_get)
    add("conversations.delete", conversations_delete)
    add("conversations.search", conversations_search)
    add("conversations.export", conversations_export)
    add("settings.get", settings_get)
    add("settings.set", settings_set)

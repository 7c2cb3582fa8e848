"""Downlink commands: parsed, checked, authorised and run, each answered with a reply record.

A command is a JSON object on ``cw/{fleet}/{device}/cmd``::

    {"id": "c-17", "cmd": "set_rates", "args": {"summary_s": 30}, "auth": "<hex>"}

``auth`` is needed only by commands that change the BMS (``clear_faults``): the HMAC-SHA256,
under the device's command key, of ``device|id|cmd|args`` with ``args`` as compact JSON with
sorted keys. An id is accepted once (a replayed command is refused). Whatever arrives, the
answer is a reply record, never an exception. docs/telemetry.md lists the commands.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

MAX_COMMAND_BYTES = 4096
HEX = re.compile(r"[0-9a-fA-F]{1,128}")
REMEMBERED_IDS = 1024
RATE_LIMITS_S = {
    "summary_s": (1.0, 86400.0),
    "cells_s": (1.0, 86400.0),
    "position_s": (1.0, 86400.0),
    "health_s": (10.0, 86400.0),
    "batch_s": (0.0, 86400.0),
}


class CommandTarget(Protocol):
    """What commands act on (the edge node)."""

    def set_rates(self, rates_s: dict[str, float]) -> dict[str, float]: ...

    def snapshot(self, now_s: float) -> dict[str, Any]: ...

    def dtc_memory(self) -> dict[str, Any]: ...

    def clear_faults(self, now_s: float) -> dict[str, Any]: ...


class CommandError(ValueError):
    """A command that cannot run; the message is the reply's ``error``."""


@dataclass(frozen=True)
class Command:
    id: str
    cmd: str
    args: dict[str, Any]
    auth: str | None


def signature(key: str, device_id: str, command_id: str, cmd: str, args: dict[str, Any]) -> str:
    """The ``auth`` value of a command (what an operator's tool computes)."""
    message = (
        f"{device_id}|{command_id}|{cmd}|{json.dumps(args, sort_keys=True, separators=(',', ':'))}"
    )
    return hmac.new(key.encode(), message.encode(), hashlib.sha256).hexdigest()


class CommandHandler:
    """Runs commands for one device; ``key`` None refuses every authorised command."""

    def __init__(self, device_id: str, target: CommandTarget, key: str | None = None) -> None:
        self.device_id = device_id
        self.target = target
        self.key = key
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._commands: dict[str, tuple[bool, Callable[[Command, float], dict[str, Any]]]] = {
            "set_rates": (False, self._set_rates),
            "snapshot": (False, lambda command, now_s: target.snapshot(now_s)),
            "read_dtc": (False, lambda command, now_s: target.dtc_memory()),
            "clear_faults": (True, lambda command, now_s: target.clear_faults(now_s)),
        }

    def handle(self, payload: bytes, now_s: float) -> dict[str, Any]:
        """The reply record to one command payload."""
        command_id = None
        try:
            command = parse(payload)
            command_id = command.id
            if command.id in self._seen:
                raise CommandError(f"command id {command.id!r} was already used")
            entry = self._commands.get(command.cmd)
            if entry is None:
                known = ", ".join(sorted(self._commands))
                raise CommandError(f"unknown command {command.cmd[:40]!r} (known: {known})")
            needs_auth, run = entry
            if needs_auth:
                self._authorise(command)
            self._remember(command.id)
            result = run(command, now_s)
        except CommandError as error:
            return {"time_s": now_s, "id": command_id, "ok": False, "error": str(error)}
        except Exception as error:  # a reply, whatever happened: the cloud must hear of it
            message = f"command failed: {type(error).__name__}: {error}"
            return {"time_s": now_s, "id": command_id, "ok": False, "error": message[:300]}
        return {"time_s": now_s, "id": command_id, "cmd": command.cmd, "ok": True,
                "result": result}  # fmt: skip

    def _authorise(self, command: Command) -> None:
        if self.key is None:
            raise CommandError(f"{command.cmd} needs authorisation and no command key is set")
        if not command.auth:
            raise CommandError(f"{command.cmd} needs authorisation: 'auth' is missing")
        expected = signature(self.key, self.device_id, command.id, command.cmd, command.args)
        if not hmac.compare_digest(expected, command.auth):
            raise CommandError(f"{command.cmd}: not authorised (bad signature)")

    def _remember(self, command_id: str) -> None:
        self._seen[command_id] = None
        while len(self._seen) > REMEMBERED_IDS:
            self._seen.popitem(last=False)

    def _set_rates(self, command: Command, now_s: float) -> dict[str, Any]:
        rates: dict[str, float] = {}
        for name, value in command.args.items():
            if name not in RATE_LIMITS_S:
                raise CommandError(f"set_rates: unknown rate {name[:40]!r} "
                                   f"(known: {', '.join(RATE_LIMITS_S)})")  # fmt: skip
            low, high = RATE_LIMITS_S[name]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise CommandError(f"set_rates: {name} must be a number of seconds")
            if not low <= value <= high:
                raise CommandError(f"set_rates: {name} = {value} is outside {low:g}..{high:g} s")
            rates[name] = float(value)
        if not rates:
            raise CommandError("set_rates: give at least one of " + ", ".join(RATE_LIMITS_S))
        return self.target.set_rates(rates)


def parse(payload: bytes) -> Command:
    """A command from its payload; CommandError naming what is wrong."""
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandError(f"command of {len(payload)} bytes exceeds {MAX_COMMAND_BYTES}")
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CommandError(f"command is not JSON: {error}") from None
    except RecursionError:
        raise CommandError("command is nested too deeply") from None
    if not isinstance(document, dict):
        raise CommandError("command must be a JSON object")
    command_id, cmd = document.get("id"), document.get("cmd")
    if not isinstance(command_id, str) or not 0 < len(command_id) <= 64:
        raise CommandError("command 'id' must be a string of 1-64 characters")
    if not isinstance(cmd, str):
        raise CommandError("command 'cmd' must be a string")
    args = document.get("args", {})
    if not isinstance(args, dict):
        raise CommandError("command 'args' must be an object")
    auth = document.get("auth")
    if auth is not None and not (isinstance(auth, str) and HEX.fullmatch(auth)):
        raise CommandError("command 'auth' must be a hex string")
    return Command(command_id, cmd, args, auth)

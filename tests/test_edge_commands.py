"""Downlink commands: every payload gets a reply naming the outcome; changes need a signature."""

import json

import pytest

from cellwarden.edge.commands import CommandHandler, signature


class Target:
    def __init__(self):
        self.rates = {"summary_s": 10.0}
        self.cleared = 0

    def set_rates(self, rates_s):
        self.rates.update(rates_s)
        return dict(self.rates)

    def snapshot(self, now_s):
        return {"time_s": now_s}

    def dtc_memory(self):
        return {"strings": []}

    def clear_faults(self, now_s):
        self.cleared += 1
        return {"cleared": ["B1101"]}


def run(handler, document, now_s=1.0):
    payload = document if isinstance(document, bytes) else json.dumps(document).encode()
    return handler.handle(payload, now_s)


def test_rates_change_within_their_ranges():
    target = Target()
    handler = CommandHandler("dev-1", target)
    reply = run(handler, {"id": "a", "cmd": "set_rates", "args": {"summary_s": 30}})
    assert reply["ok"] and reply["result"]["summary_s"] == 30 and target.rates["summary_s"] == 30
    for args, reason in (({"summary_s": 0.1}, "outside"), ({"summary_s": "fast"}, "number"),
                         ({"colour": 3}, "unknown rate"), ({}, "at least one")):  # fmt: skip
        reply = run(handler, {"id": f"b{reason}", "cmd": "set_rates", "args": args})
        assert not reply["ok"] and reason in reply["error"]
    assert target.rates["summary_s"] == 30


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"cmd": "snapshot"}', "'id'"),
        (b'{"id": "x", "cmd": 5}', "'cmd'"),
        (b'{"id": "x", "cmd": "snapshot", "args": [1]}', "'args'"),
        (b'{"id": "x", "cmd": "self_destruct"}', "unknown command"),
        (b'{"id": "x", "cmd": "snapshot", "pad": "' + b"a" * 5000 + b'"}', "exceeds"),
    ],
)
def test_malformed_commands_get_an_error_reply(payload, reason):
    reply = CommandHandler("dev-1", Target()).handle(payload, 2.0)
    assert reply["ok"] is False and reason in reply["error"]


def test_clearing_faults_needs_a_valid_signature_once():
    target = Target()
    handler = CommandHandler("dev-1", target, key="s3cret")
    unsigned = run(handler, {"id": "c1", "cmd": "clear_faults"})
    assert "'auth' is missing" in unsigned["error"]
    forged = run(handler, {"id": "c2", "cmd": "clear_faults", "auth": "00" * 32})
    assert "not authorised" in forged["error"]
    other_device = signature("s3cret", "dev-2", "c3", "clear_faults", {})
    assert (
        "not authorised"
        in run(handler, {"id": "c3", "cmd": "clear_faults", "auth": other_device})["error"]
    )
    assert target.cleared == 0
    good = {"id": "c4", "cmd": "clear_faults",
            "auth": signature("s3cret", "dev-1", "c4", "clear_faults", {})}  # fmt: skip
    assert run(handler, good)["ok"] and target.cleared == 1
    assert "already used" in run(handler, good)["error"]  # a replay
    assert target.cleared == 1


def test_without_a_key_nothing_is_authorised():
    handler = CommandHandler("dev-1", Target())
    auth = signature("", "dev-1", "c", "clear_faults", {})
    assert (
        "no command key" in run(handler, {"id": "c", "cmd": "clear_faults", "auth": auth})["error"]
    )


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"id": "x", "cmd": "snapshot", "args": ' + b"[" * 1500 + b"]" * 1500 + b"}", "nested"),
        ('{"id": "x", "cmd": "clear_faults", "auth": "é"}'.encode(), "'auth'"),
    ],
)
def test_hostile_commands_still_get_a_reply(payload, reason):
    reply = CommandHandler("dev-1", Target(), key="k").handle(payload, 1.0)
    assert reply["ok"] is False and reason in reply["error"]


def test_a_failing_command_is_answered():
    class Broken(Target):
        def dtc_memory(self):
            raise RuntimeError("event log unreadable")

    reply = run(CommandHandler("dev-1", Broken()), {"id": "d", "cmd": "read_dtc"})
    assert reply["ok"] is False and "event log unreadable" in reply["error"]

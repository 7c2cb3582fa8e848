"""Telemetry made for the cloud's tests: batches of a pack's records and a device publisher."""

from __future__ import annotations

import threading

import numpy as np
import paho.mqtt.client as mqtt

from cellwarden.telemetry import codec
from cellwarden.telemetry.schema import Kind

EPOCH_S = 1_790_000_000.0  # 2026-09-21


def summaries(first_seq: int, count: int, start_s: float = EPOCH_S, period_s: float = 10.0,
              **fields: float) -> list[tuple[int, dict]]:  # fmt: skip
    """Pack summaries every ``period_s``: SoC falling 0.1 % per record, fixed values otherwise."""
    base = {"soc_pct": 80.0, "soh_pct": 97.0, "voltage_v": 52.0, "current_a": -10.0,
            "cell_voltage_min_v": 3.25, "cell_voltage_max_v": 3.27, "temp_min_c": 24.0,
            "temp_max_c": 27.0, "path_state": 2, "alarms": 0, "warnings": 0, "worst_code": 0,
            "balancing_cells": 0, "strings_connected": 1} | fields  # fmt: skip
    return [
        (
            first_seq + i,
            base | {"time_s": start_s + i * period_s, "soc_pct": base["soc_pct"] - i * 0.1},
        )
        for i in range(count)
    ]


def cells(first_seq: int, count: int, cell_count: int, start_s: float = EPOCH_S,
          period_s: float = 60.0, seed: int = 0) -> list[tuple[int, dict]]:  # fmt: skip
    rng = np.random.default_rng(seed)
    return [
        (
            first_seq + i,
            {
                "time_s": start_s + i * period_s,
                "voltage_v": np.round(3.3 + rng.normal(0, 0.01, cell_count), 3).tolist(),
                "temp_c": np.round(25 + rng.normal(0, 0.5, cell_count), 1).tolist(),
                "balancing": (rng.random(cell_count) < 0.2).tolist(),
            },
        )
        for i in range(count)
    ]


def payload(kind: Kind, batch: list[tuple[int, dict]]) -> bytes:
    return codec.encode(kind, batch)


class Publisher:
    """A device's bare MQTT 5 client publishing at QoS 1 and waiting for the PUBACKs."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-pub",
                                  protocol=mqtt.MQTTv5)  # fmt: skip
        self.client.username_pw_set(user, password)
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._lock = threading.Lock()

    def publish(self, topic: str, body: bytes) -> None:
        self.client.publish(topic, body, qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

"""The architecture limits of the design table, in one place."""

from __future__ import annotations

from enum import StrEnum


class Architecture(StrEnum):
    STANDALONE = "standalone"
    MASTER_SLAVE = "master-slave"
    MULTI_MASTER = "multi-master"


class Topology(StrEnum):
    """How the strings of a system are joined."""

    PARALLEL = "parallel"
    SERIES = "series"
    DISTRIBUTED = "distributed"


class PowerPathKind(StrEnum):
    MOSFET = "mosfet"
    CONTACTORS = "contactors"


STANDALONE_MIN_SERIES = 6
STANDALONE_MAX_SERIES = 16
STANDALONE_EXTENDED_MAX_SERIES = 18
STANDALONE_MAX_VOLTAGE_V = 75.6
MOSFET_MAX_CURRENT_A = 250.0
SLAVE_CELL_COUNTS = (12, 18)
MAX_SLAVES = 16
MASTER_SLAVE_MIN_SERIES = 5
MASTER_SLAVE_MAX_SERIES = 288
MAX_STRING_VOLTAGE_V = 1500.0
MAX_STRINGS = 16  # string masters on one system bus
INVERTER_CAN_MAX_VOLTAGE_V = 327.67  # the inverter CAN's 0x356 carries s16 × 0.01 V
STANDALONE_BALANCING_CURRENT_A = (0.40, 0.42)
"""Passive balancing current range of a standalone board (min, max)."""
MASTER_SLAVE_BALANCING_CURRENT_A = (0.40, 1.0)
"""Passive balancing current range of a slave, commanded by its master (min, max)."""

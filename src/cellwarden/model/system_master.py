"""Settings of a multi-master system's coordinator, the system master."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SystemMasterSettings(BaseModel):
    """How the system master joins strings to the DC bus and what happens when links fall
    silent (see docs/system-master.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_window_pct: float = Field(
        default=1.5,
        gt=0,
        le=20,
        description="a string joins the live bus only within this share of its nominal voltage",
    )
    charge_priority: Literal["lowest-voltage", "string-order"] = Field(
        default="lowest-voltage",
        description="which string goes first onto a dead bus when charging (discharging: the "
        "highest); the rest join as the bus voltage reaches theirs",
    )
    string_timeout_s: float = Field(
        default=1.0, gt=0, le=60, description="a string silent this long is isolated"
    )
    rejoin_delay_s: float = Field(
        default=10.0, ge=0, le=3600, description="a recovered string stays healthy this long"
    )
    command_timeout_s: float = Field(
        default=1.0, gt=0, le=60, description="string masters count the system master lost"
    )
    loss_action: Literal["open", "hold"] = Field(
        default="hold",
        description="what a string master does without its system master: open its path, or "
        "hold it as it is on its own protection (it never joins on its own)",
    )
    inverter_timeout_s: float = Field(
        default=5.0, gt=0, le=600, description="the inverter counts lost without its keep-alive"
    )
    inverter_loss_action: Literal["open", "hold"] = Field(
        default="open",
        description="without the inverter's keep-alive: ramp down and open every string, or "
        "hold and keep publishing limits",
    )

"""The control logic: hardware-agnostic, clock-injected, arrays over cells."""

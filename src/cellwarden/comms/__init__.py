"""Wire protocols: DBC-defined CAN messages and their codecs, charger and external CAN,
the serial console."""

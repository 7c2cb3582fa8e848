"""The fleet simulator: mixed fleets aged over years, with developing faults and their truth."""

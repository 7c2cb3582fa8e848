"""The closed-loop runner: plant, drivers, BMS and buses on one simulated clock."""

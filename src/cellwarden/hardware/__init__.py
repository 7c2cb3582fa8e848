"""The board layer: interfaces the BMS talks to, and simulated drivers over the plant."""

"""The physical world in simulation: cells, thermal, ageing, power paths, loads and chargers."""

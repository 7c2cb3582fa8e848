"""The full campaign of every built-in scenario, in processes, against the same tests one
after another.

Every test of every built-in scenario runs as ``cellwarden campaign --jobs N`` runs it (N = one
per CPU by default; ``CELLWARDEN_BENCH_JOBS`` overrides), the longest first. Each test times
itself in its worker; their sum is what one process would take, the baseline measured in the
same run, and sum / wall the speed-up of the processes. Goal: the whole campaign in under 15
minutes on this machine.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict

from cellwarden.simulation.campaign import run_campaign
from cellwarden.simulation.catalogue import builtin_scenarios

GOAL_WALL_S = 900.0


def measure() -> dict[str, list[dict[str, float | str]]]:
    jobs = int(os.environ.get("CELLWARDEN_BENCH_JOBS", os.cpu_count() or 1))
    scenarios = builtin_scenarios()
    started = time.perf_counter()
    results = run_campaign(scenarios, jobs=jobs)
    wall_s = time.perf_counter() - started
    serial_s = sum(result.wall_s for result in results)
    per_scenario: dict[str, list] = defaultdict(list)
    for result in results:
        per_scenario[result.scenario].append(result)
    summary = {
        "scenarios": len(scenarios),
        "tests": len(results),
        "passed": sum(result.passed for result in results),
        "jobs": jobs,
        "wall_s": wall_s,
        "one_process_s": serial_s,
        "speed_up": serial_s / wall_s,
        "goal_wall_s": GOAL_WALL_S,
        "meets_goal": wall_s < GOAL_WALL_S,
        "load_avg_1min": os.getloadavg()[0],
    }
    rows = []
    for name, tests in sorted(per_scenario.items()):
        longest = max(tests, key=lambda test: test.wall_s)
        rows.append({
            "scenario": name,
            "tests": len(tests),
            "passed": sum(test.passed for test in tests),
            "one_process_s": sum(test.wall_s for test in tests),
            "longest_test": longest.test,
            "longest_test_s": longest.wall_s,
        })  # fmt: skip
    return {"campaign_speed": [summary], "campaign_per_scenario": rows}


if __name__ == "__main__":
    for title, rows in measure().items():
        print(title)
        for row in rows:
            print("  " + ", ".join(f"{key}={value}" for key, value in row.items()))

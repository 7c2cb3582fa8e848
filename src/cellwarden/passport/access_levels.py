"""Who may see which passport attribute (Art. 77(2) of Regulation (EU) 2023/1542).

The consortium's attribute list gives each attribute one of four access rights; a role sees an
attribute when its right is among the role's. The manufacturer (the economic operator that
keeps the passport) sees everything; notified bodies, market surveillance authorities and the
Commission see what the list opens to them by name ("... and the Commission", "Notified bodies
..."), which leaves out what is for persons with a legitimate interest alone.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

from cellwarden.passport.batterypass_files import PassportDataError, access_levels_path

PUBLIC = "Public"
LEGITIMATE = "persons with a legitimate interest"
LEGITIMATE_AND_COMMISSION = "persons with a legitimate interest and the Commission"
AUTHORITIES = "Notified bodies, market surveillance authorities and the Commission"
ACCESS_RIGHTS = (PUBLIC, LEGITIMATE, LEGITIMATE_AND_COMMISSION, AUTHORITIES)


class Role(StrEnum):
    PUBLIC = "public"
    LEGITIMATE_INTEREST = "legitimate-interest"  # repairers, second-life operators, recyclers
    AUTHORITY = "authority"  # notified bodies, market surveillance, the Commission
    MANUFACTURER = "manufacturer"


ROLE_RIGHTS: dict[Role, frozenset[str]] = {
    Role.PUBLIC: frozenset({PUBLIC}),
    Role.LEGITIMATE_INTEREST: frozenset({PUBLIC, LEGITIMATE, LEGITIMATE_AND_COMMISSION}),
    Role.AUTHORITY: frozenset({PUBLIC, LEGITIMATE_AND_COMMISSION, AUTHORITIES}),
    Role.MANUFACTURER: frozenset(ACCESS_RIGHTS),
}


@dataclass(frozen=True)
class Attribute:
    number: int  # the list's "#"
    category: str
    name: str
    access_rights: str
    dynamic: bool


@cache
def attributes() -> dict[int, Attribute]:
    """The attribute list, by number."""
    path = access_levels_path()
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    found: dict[int, Attribute] = {}
    for line, row in enumerate(rows, start=2):
        rights = row.get("access_rights", "")
        if rights not in ACCESS_RIGHTS:
            raise PassportDataError(f"{path} line {line}: unknown access right {rights!r}")
        number = int(row["#"])
        found[number] = Attribute(
            number, row["category"], row["attribute"], rights, row["static_dynamic"] == "Dynamic"
        )
    return found


def visible_attributes(role: Role) -> frozenset[int]:
    """Numbers of the attributes ``role`` may see."""
    rights = ROLE_RIGHTS[role]
    return frozenset(n for n, a in attributes().items() if a.access_rights in rights)


def parse_role(text: str) -> Role:
    try:
        return Role(text)
    except ValueError:
        names = ", ".join(role.value for role in Role)
        raise ValueError(f"unknown passport role {text!r}: use one of {names}") from None

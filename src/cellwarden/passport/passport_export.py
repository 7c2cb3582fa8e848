"""A passport document (or one role's view of it) as JSON-LD and as a self-contained HTML page.

JSON-LD: each section carries a context whose vocabulary is its SAMM aspect, so every property
expands to the same URN as the schema's ``x-samm-aspect-model-urn`` (e.g.
``urn:samm:io.BatteryPass.Performance:1.2.1#ratedCapacity``); the passport itself is the node
named by its identifier. HTML: one table per section, each value labelled with the attribute
of the access-level list it belongs to, and the QR code of the passport's address.
"""

from __future__ import annotations

import html
from typing import Any

from cellwarden.passport.access_levels import Role, attributes
from cellwarden.passport.batterypass_files import SECTIONS
from cellwarden.passport.passport_fields import leaves

PASSPORT_VOCAB = "urn:cellwarden:passport#"


def to_json_ld(document: dict) -> dict:
    urn = document.get("generalProductInformation", {}).get("batteryPassportIdentifier")
    linked: dict[str, Any] = {"@context": {"@vocab": PASSPORT_VOCAB}}
    if urn:
        linked["@id"] = urn
    for section in SECTIONS:
        if section.key in document:
            linked[section.key] = {
                "@context": {"@vocab": f"urn:samm:{section.aspect}#"},
                **document[section.key],
            }
    return linked


def from_json_ld(linked: dict) -> dict:
    """The plain document inside a JSON-LD export (keys starting with "@" dropped)."""

    def plain(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items() if not k.startswith("@")}
        if isinstance(node, list):
            return [plain(item) for item in node]
        return node

    return plain(linked)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
header { display: flex; gap: 2rem; align-items: center; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1.5rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd;
         vertical-align: top; }
th { width: 45%; font-weight: normal; color: #555; }
td.path { color: #999; font-size: .8em; }
"""


def _label(path: tuple[str, ...], attribute: int | None) -> str:
    name = attributes()[attribute].name if attribute in attributes() else ""
    steps = [step for step in path[1:] if step != "[]"]
    return f"{name} ({steps[-1]})" if name else steps[-1]


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value(item) for item in value)
    if isinstance(value, str) and value.startswith(("http://", "https://")):
        escaped = html.escape(value)
        return f'<a href="{escaped}" rel="noopener">{escaped}</a>'
    return html.escape(str(value))


def to_html(document: dict, role: Role, qr_svg: str = "", url: str = "") -> str:
    """The page for ``role``: ``document`` must already be that role's projection."""
    general = document.get("generalProductInformation", {})
    urn = html.escape(str(general.get("batteryPassportIdentifier", "")))
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>Battery passport {urn}</title><style>{_STYLE}</style></head><body>",
        f"<header><div>{qr_svg}</div><div><h1>Battery passport</h1>",
        f"<p id='identifier'>{urn}</p>",
        f"<p>Shown for: <strong id='role'>{html.escape(role.value)}</strong></p>",
    ]
    if url:
        parts.append(f"<p><a href='{html.escape(url)}'>{html.escape(url)}</a></p>")
    parts.append("</div></header>")
    rows_by_section: dict[str, list[str]] = {}
    for path, attribute, value in leaves(document):
        rows_by_section.setdefault(path[0], []).append(
            f"<tr data-attribute='{attribute}'><th>{html.escape(_label(path, attribute))}</th>"
            f"<td>{_value(value)}</td></tr>"
        )
    for section in SECTIONS:
        rows = rows_by_section.get(section.key)
        if rows:
            parts.append(
                f"<section id='{section.key}'><h2>{html.escape(section.title)}</h2>"
                f"<table>{''.join(rows)}</table></section>"
            )
    parts.append("</body></html>")
    return "".join(parts)

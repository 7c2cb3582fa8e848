"""The passport's unique identifier and the QR code that leads to it (Art. 77(3)).

The data model asks for ``urn:NAMESPACE:ID`` with lowercase letters and digits only; the ID
is the battery's serial number with everything else dropped, so two serials that differ only
in case or punctuation share an identifier (the store refuses the second).
"""

from __future__ import annotations

import io
import re

import segno

URN_PATTERN = re.compile(r"^urn:[a-z0-9]+:[a-z0-9]+$")  # the data model's, verbatim
DEFAULT_NAMESPACE = "cellwarden"


def passport_urn(serial_number: str, namespace: str = DEFAULT_NAMESPACE) -> str:
    """``urn:{namespace}:{serial}`` reduced to the pattern's alphabet."""
    name = re.sub(r"[^a-z0-9]", "", namespace.lower())
    serial = re.sub(r"[^a-z0-9]", "", serial_number.lower())
    if not name or not serial:
        raise ValueError(
            f"serial {serial_number!r} in namespace {namespace!r} leaves no letters or digits "
            "for a passport identifier"
        )
    return f"urn:{name}:{serial}"


def check_urn(text: str) -> str:
    if not URN_PATTERN.match(text):
        raise ValueError(f"{text!r} is not a passport identifier (urn:NAMESPACE:ID, a-z and 0-9)")
    return text


def passport_url(base_url: str, urn: str) -> str:
    """The public page of a passport under the cloud's address."""
    return f"{base_url.rstrip('/')}/passport/{check_urn(urn)}"


def qr_code_svg(url: str) -> str:
    """An SVG QR code (error correction M) of ``url``."""
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="svg", scale=4, xmldecl=False)
    return buffer.getvalue().decode("utf-8")


def qr_code_png(url: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(url, error="m", micro=False).save(buffer, kind="png", scale=6)
    return buffer.getvalue()

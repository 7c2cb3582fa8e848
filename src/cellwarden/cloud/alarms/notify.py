"""Delivery of the notifications outbox: webhooks (signed JSON POSTs) and plain-text e-mail.

Rows are claimed by pushing their ``next_s`` a lease ahead, so that several notifiers never
send one twice and a crashed one's claims come due again. A failure is retried with
exponential back-off and given up (``failed``) after ``max_attempts``; nothing raises into the
caller. A sent row keeps in ``next_s`` when it went.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage

import httpx

from cellwarden.cloud.store.database import Database

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Cellwarden-Signature"
MAX_ERROR = 500  # characters of an error kept


@dataclass
class Delivery:
    """What one ``deliver_due`` did."""

    sent: int = 0
    retrying: int = 0
    failed: int = 0


def signature(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` under ``secret`` (the X-Cellwarden-Signature value)."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class Notifier:
    def __init__(
        self, db: Database, smtp_host: str, smtp_port: int, mail_from: str,
        webhook_timeout_s: float = 10.0, *, webhook_secret: str | None = None,
        smtp_timeout_s: float = 30.0, max_attempts: int = 8, retry_base_s: float = 30.0,
        retry_max_s: float = 3600.0, batch: int = 50,
    ) -> None:  # fmt: skip
        self.db = db
        self.smtp_host, self.smtp_port, self.mail_from = smtp_host, smtp_port, mail_from
        self.webhook_timeout_s = webhook_timeout_s
        self.webhook_secret = webhook_secret
        self.smtp_timeout_s = smtp_timeout_s
        self.max_attempts = max_attempts
        self.retry_base_s, self.retry_max_s = retry_base_s, retry_max_s
        self.batch = batch
        self.lease_s = 2 * max(webhook_timeout_s, smtp_timeout_s) + 60.0  # one delivery

    def deliver_due(self, now_s: float) -> Delivery:
        """Send the notifications due at ``now_s``, up to ``batch`` of them, one at a time."""
        done = Delivery()
        with httpx.Client(timeout=self.webhook_timeout_s, follow_redirects=False) as client:
            for _ in range(self.batch):
                claimed = self._claim(now_s)
                if claimed is None:
                    break
                row_id, channel, target, title, body, attempts = claimed
                try:
                    if channel == "webhook":
                        self._post(client, target, body)
                    else:
                        self._mail(target, title, body)
                except Exception as error:  # any failure is retried, never raised
                    self._record(row_id, attempts + 1, f"{type(error).__name__}: {error}",
                                 now_s, done)  # fmt: skip
                else:
                    self._record(row_id, attempts + 1, None, now_s, done)
        return done

    def _claim(self, now_s: float) -> tuple | None:
        """The most overdue pending notification, its ``next_s`` pushed a lease ahead."""
        with self.db.transaction():
            row = self.db.execute(
                "UPDATE notifications SET next_s = ? WHERE state = 'pending' AND next_s <= ? "
                "AND id = (SELECT id FROM notifications WHERE state = 'pending' "
                "AND next_s <= ? ORDER BY next_s, id LIMIT 1) "
                "RETURNING id, channel, target, subject, body, attempts",
                (now_s + self.lease_s, now_s, now_s),
            ).fetchone()
        return row

    def _post(self, client: httpx.Client, url: str, body: str) -> None:
        content = body.encode()
        headers = {"Content-Type": "application/json"}
        if self.webhook_secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.webhook_secret, content)
        response = client.post(url, content=content, headers=headers)
        if not response.is_success:
            raise RuntimeError(f"HTTP {response.status_code} from {url}")

    def _mail(self, address: str, title: str, body: str) -> None:
        message = EmailMessage()
        message["From"] = self.mail_from
        message["To"] = address
        message["Subject"] = title
        message.set_content(body)
        with smtplib.SMTP(self.smtp_host, self.smtp_port, timeout=self.smtp_timeout_s) as smtp:
            smtp.send_message(message)

    def _record(
        self, row_id: int, attempts: int, error: str | None, now_s: float, done: Delivery
    ) -> None:
        if error is None:
            state, next_s = "sent", now_s
            done.sent += 1
        elif attempts >= self.max_attempts:
            state, next_s = "failed", now_s
            done.failed += 1
            log.warning("notification %s failed for good: %s", row_id, error)
        else:
            state = "pending"
            next_s = now_s + min(self.retry_base_s * 2 ** (attempts - 1), self.retry_max_s)
            done.retrying += 1
        with self.db.transaction():
            self.db.execute(
                "UPDATE notifications SET state = ?, attempts = ?, next_s = ?, error = ? "
                "WHERE id = ?",
                (state, attempts, next_s, None if error is None else error[:MAX_ERROR], row_id),
            )

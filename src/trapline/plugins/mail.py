"""The e-mail sink: one message per alert over SMTP, with its VOEvent attached."""

from __future__ import annotations

import json
import os
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, ClassVar

from trapline.alerts.record import Alert
from trapline.alerts.text import alert_line, source_url
from trapline.plugins.base import Option
from trapline.plugins.sink import (
    DELIVERY_OPTIONS,
    VOEVENT_OPTIONS,
    DeliveringSink,
    GiveUp,
    Retry,
)

__all__ = ["EmailSink", "alert_message"]


def alert_message(alert: Alert, sender: str, to: list[str], subject: str = "[trapline]",
                  base_url: str = "", voevent: str | None = None) -> EmailMessage:
    """The e-mail of an alert: its line as the subject (after ``subject``) and first
    line of the text, the source's page, the alert as JSON; the VOEvent attached.
    The Message-ID is made of the alert id, so a repeated alert is the same message."""
    msg = EmailMessage()
    msg["Subject"] = (f"{subject} {alert.kind} ({alert.level}) source {alert.source_id}, "
                      f"significance {alert.significance:.1f}").strip()
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = f"<{alert.alert_id}@{sender.rpartition('@')[2] or 'trapline'}>"
    url = source_url(base_url, alert.source_id)
    text = [alert_line(alert), *([f"Source page: {url}"] if url else []), "",
            json.dumps(alert.to_dict(), indent=2)]
    msg.set_content("\n".join(text) + "\n")
    if voevent is not None:
        msg.add_attachment(voevent.encode(), maintype="application", subtype="xml",
                           filename=f"{alert.alert_id}.xml")
    return msg


def _smtp_error(exc: smtplib.SMTPException) -> Exception:
    """Retry on a 4xx (temporary) answer or a lost connection, not on 5xx."""
    codes = [code for code, _ in getattr(exc, "recipients", {}).values()]
    code = getattr(exc, "smtp_code", None)
    codes = codes or ([code] if isinstance(code, int) else [])
    if isinstance(exc, smtplib.SMTPServerDisconnected) or (
            codes and all(400 <= c < 500 for c in codes)):
        return Retry(f"SMTP: {exc}")
    return GiveUp(f"SMTP: {exc}")


class EmailSink(DeliveringSink):
    """Mails :func:`alert_message` of each alert to ``to`` through the SMTP server at
    ``host``:``port`` (plain, ``starttls`` or ``ssl``). The login, if any, is read from
    the environment variables named by ``user_env`` and ``password_env`` (never from
    the configuration file). Temporary failures (4xx answers, lost or refused
    connections) are retried with backoff; permanent ones (5xx) are not."""

    name = "email"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "to": Option([], "recipients (TOML list, or comma separated on the command line); "
                         "required", list),
        "sender": Option("trapline@localhost", "From: address"),
        "host": Option("localhost", "SMTP server"),
        "port": Option(0, "SMTP port (0: 465 with ssl, 587 with starttls, else 25)"),
        "starttls": Option(False, "upgrade the connection with STARTTLS"),
        "ssl": Option(False, "connect with TLS from the start (SMTPS)"),
        "user_env": Option("", "environment variable holding the SMTP user name"),
        "password_env": Option("", "environment variable holding the SMTP password"),
        "subject": Option("[trapline]", "start of the subject line"),
        "base_url": Option("", "URL of the run's web server: the mail links to the source"),
        "attach_voevent": Option(True, "attach the VOEvent 2.0 packet"),
        "timeout_s": Option(30.0, "time allowed for one SMTP conversation step (s)"),
        **VOEVENT_OPTIONS,
        **DELIVERY_OPTIONS,
    }

    def __init__(self, **options: Any):
        super().__init__(**options)
        if not self.to:
            raise ValueError("needs recipients: to=someone@example.org")
        if self.ssl and self.starttls:
            raise ValueError("give ssl or starttls, not both")
        self.port = self.port or (465 if self.ssl else 587 if self.starttls else 25)
        self.login = None
        if self.user_env or self.password_env:
            values = []
            for option in ("user_env", "password_env"):
                variable = getattr(self, option)
                if not variable or variable not in os.environ:
                    raise ValueError(f"set {option} to the name of an "
                                     f"environment variable that is set (got {variable!r})")
                values.append(os.environ[variable])
            self.login = tuple(values)

    def send(self, alert: Alert) -> None:
        voevent = self.voevent_packet(alert) if self.attach_voevent else None
        msg = alert_message(alert, self.sender, self.to, self.subject, self.base_url, voevent)
        context = ssl.create_default_context()
        try:
            if self.ssl:
                smtp = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                        context=context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=context)
                if self.login:
                    smtp.login(*self.login)
                smtp.send_message(msg)
        except smtplib.SMTPException as exc:
            raise _smtp_error(exc) from exc
        except OSError as exc:  # refused, reset, timed out, TLS failure
            raise Retry(f"{type(exc).__name__}: {exc}") from exc

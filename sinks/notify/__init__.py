"""Notification channels: SMTP mail, HTTP webhooks (Slack, Teams, signed JSON). Generic: no alerts here.

Each channel sends one message and either returns or raises :class:`DeliveryFailed` with a reason
and whether trying again may help; retries, schedules and dead letters belong to the caller.
"""

from boucle.sinks.notify.errors import DeliveryFailed

__all__ = ["DeliveryFailed"]

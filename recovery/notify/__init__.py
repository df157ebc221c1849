"""Telling people what happens: team alarms and run outcomes, customer order updates (SNS)."""

from recovery.notify.publish import Delivery, Notifier, pending, read_outbox
from recovery.notify.templates import Message, TemplateSet, load_templates

__all__ = ["Delivery", "Message", "Notifier", "TemplateSet", "load_templates", "pending", "read_outbox"]

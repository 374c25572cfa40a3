"""Mail lifeline sends: receipts, problem notices, reminders and the
coordinator's summary, read from the store's notice queue."""

from notify.deliver import DeliveryResult, deliver_pending, sender_for
from notify.receipts import queue_receipt
from notify.reminders import (
    PlannedReminder,
    due_reminders,
    format_plan,
    queue_due_reminders,
)
from notify.stale import queue_stale_poll_notice
from notify.summary import (
    SummaryData,
    build_summary,
    format_summary,
    queue_due_summary,
    queue_summary,
)

__all__ = [
    "DeliveryResult",
    "PlannedReminder",
    "SummaryData",
    "build_summary",
    "deliver_pending",
    "due_reminders",
    "format_plan",
    "format_summary",
    "queue_due_reminders",
    "queue_due_summary",
    "queue_receipt",
    "queue_stale_poll_notice",
    "queue_summary",
    "sender_for",
]

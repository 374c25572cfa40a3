"""Mail lifeline sends: receipts, problem notices, reminders and the
coordinator's summary, read from the store's notice queue."""

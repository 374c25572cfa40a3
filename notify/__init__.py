"""Mail lifeline sends: receipts, problem notices, reminders and the
coordinator's summary, read from the store's notice queue.

Import the modules themselves (notify.receipts, notify.summary, ...): this
package imports nothing, so the daemon does not load openpyxl at start-up
for a summary it writes once a month.
"""

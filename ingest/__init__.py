"""From a raw mail to reports: decode, find attachments, read tables,
name unit and period."""

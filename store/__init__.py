"""Everything lifeline keeps: raw mails, reports, problems, units and the
outgoing notice queue."""

"""lifeline: takes the units' monthly statistics tables from the campaign mailbox."""

__version__ = "0.1.0"

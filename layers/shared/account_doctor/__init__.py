"""Account Doctor: finds out why a Nylas-connected mailbox stopped syncing, and tells the right person."""

__version__ = "0.1.0"

"""Tally: an LTI 1.3 Advantage tool that keeps a grade ledger and delivers scores to the LMS."""

__version__ = "0.1.0"

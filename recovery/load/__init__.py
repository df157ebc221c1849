"""Steady load through the front door, and the ledger of every order the service acknowledged."""

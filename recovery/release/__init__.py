"""Releases of the order service: the catalog of definitions and the tarballs the deploy playbook unpacks."""

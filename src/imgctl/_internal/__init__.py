"""Helpers used by several packages (serving, strict YAML, ...), each written once.

Nothing here is public API; packages import the modules directly.
"""

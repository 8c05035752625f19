"""Handlers for the CALLs a charge point sends, one module per action."""

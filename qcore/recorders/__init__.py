"""Recorders that ship with the kernel."""

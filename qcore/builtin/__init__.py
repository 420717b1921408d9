"""Plugins shipped with the kernel, registered exactly like installed ones."""

"""qcore plugin: run a workflow's independent tasks on Ray (``backend: ray``) and manage a local Ray head."""

__version__ = "0.1.0"

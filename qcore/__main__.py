"""``python -m qcore`` runs the command line."""

from qcore.cli import main

main()

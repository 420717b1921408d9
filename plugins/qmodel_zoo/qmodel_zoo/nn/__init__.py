"""PyTorch models of the zoo (the ``torch`` extra). Importing any module here imports torch."""

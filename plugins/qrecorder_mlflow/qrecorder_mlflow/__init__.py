"""qcore plugin qrecorder_mlflow."""

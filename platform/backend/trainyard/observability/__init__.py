"""The API process's metrics and tracing glue."""

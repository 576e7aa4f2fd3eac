"""MLflow tracking: one MLflow run per job run, its artifacts beside the run's outputs, the
signed loopback endpoint a job talks to, and what the commands show of its metrics.
"""

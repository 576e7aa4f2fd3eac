"""The job file: Azure ML CLI v2 command jobs and the `trainstack:` extension, read into
frozen models, checked for what a pool can run and what a job may name.
"""

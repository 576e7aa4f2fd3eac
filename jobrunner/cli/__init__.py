"""The `jobrunner` command: submit and watch jobs, run agents and local pools, metrics and
the web view.
"""

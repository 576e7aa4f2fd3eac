"""What one node runs for one attempt of a job, planned without touching the machine: the
launch plan, the environment its processes see, and the dry run that shows it.
"""

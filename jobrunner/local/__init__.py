"""The cloud on one machine: Azurite as the store, a real MLflow server as the tracking
server, and a pool of agent processes (`jobrunner local-pool`).
"""

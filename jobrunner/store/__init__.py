"""The job store: Azure Blob and Queue storage through the official SDKs, and the documents
that live there (a run's status, a pool's config, datastores, poison messages, per-run SAS).
"""

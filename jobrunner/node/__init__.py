"""The node's execution side: the agent loop, one attempt (stage, launch, watch, stage out,
report), logs, output sync, Spot evictions, the node's facts and the agent's config.
"""

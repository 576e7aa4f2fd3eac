"""Pulumi components of a trainstack stack, one per module, and the stack's config models
(`components.config`). `components.stack.build_stack` wires them for `__main__.py`."""

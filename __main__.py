"""The trainstack Pulumi program: read the stack's config once, validate it, declare the stack."""

import json
from pathlib import Path

import pulumi

from components.config import StackConfig
from components.stack import build_stack


def _read(config: pulumi.Config, key: str) -> object:
    # Pulumi hands structured values over as JSON text and plain strings as themselves.
    text = config.get(key)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


_config = pulumi.Config("trainstack")
_keys = [field.alias or name for name, field in StackConfig.model_fields.items()]
stack_config = StackConfig.model_validate({k: v for k in _keys if (v := _read(_config, k)) is not None})
location = pulumi.Config("azure-native").require("location")

for _name, _value in build_stack(
    stack_config, location=location, stack=pulumi.get_stack(), project_dir=Path(__file__).parent
).items():
    pulumi.export(_name, _value)

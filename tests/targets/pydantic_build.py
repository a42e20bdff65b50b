"""Target that builds pydantic-core validators around parent classes: imported only in child processes.

pydantic-core builds a model instance as `cls.__new__(cls)` and sets its `__dict__` and
`__pydantic_fields_set__` directly, without calling the class: here `cls` is a class handle.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import SchemaValidator, core_schema


class Builder:
    def validate_model(self, cls: type, data: dict[str, Any]) -> Any:
        schema = core_schema.model_schema(cls, core_schema.model_fields_schema({
            "x": core_schema.model_field(core_schema.int_schema()),
            "tag": core_schema.model_field(core_schema.with_default_schema(core_schema.str_schema(), default="t")),
        }))
        return SchemaValidator(schema).validate_python(data)

    def validate_subclass(self, cls: type, value: Any) -> Any:
        return SchemaValidator(core_schema.is_subclass_schema(cls)).validate_python(value)

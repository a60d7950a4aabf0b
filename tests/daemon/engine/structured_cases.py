"""Schemas and prompts for the structured-output tests and bench/structured.py.

Every schema bounds its answer (maxLength, maxItems, enums, additionalProperties: false)
so that a complete answer fits in MAX_TOKENS: MLX runs ~5 tokens/s on a CPU, and an
answer cut by the limit is an error, not a result. Together they cover flat and nested
objects, arrays (of strings, of objects, at the top level), enums, patterns, numbers and
integers with bounds, booleans, optional fields and $ref.
"""

from __future__ import annotations

from typing import Any

MAX_TOKENS = 80


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def _text(n: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": n}


SCHEMAS: dict[str, dict[str, Any]] = {
    "flat": _object({"name": _text(16), "age": {"type": "integer", "minimum": 0, "maximum": 120}}),
    "enum": _object({"sentiment": {"enum": ["positive", "negative", "neutral"]}}),
    "pattern": _object({"code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{3}$"}}),
    "numbers": _object(
        {
            "celsius": {"type": "number", "minimum": -50, "maximum": 60},
            "humidity": {"type": "integer", "minimum": 0, "maximum": 100},
        }
    ),
    "boolean_optional": _object(
        {"answer": {"type": "boolean"}, "reason": _text(24)}, required=["answer"]
    ),
    "string_array": _object(
        {"words": {"type": "array", "items": _text(12), "minItems": 1, "maxItems": 3}}
    ),
    "nested": _object(
        {
            "person": _object(
                {
                    "name": _text(12),
                    "address": _object(
                        {"city": _text(12), "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}
                    ),
                }
            )
        }
    ),
    "object_array": _object(
        {
            "steps": {
                "type": "array",
                "items": _object(
                    {"n": {"type": "integer", "minimum": 1, "maximum": 9}, "do": _text(16)}
                ),
                "minItems": 1,
                "maxItems": 2,
            }
        }
    ),
    "ref": {
        "$defs": {
            "point": _object(
                {
                    "x": {"type": "integer", "minimum": -9, "maximum": 9},
                    "y": {"type": "integer", "minimum": -9, "maximum": 9},
                }
            )
        },
        **_object({"start": {"$ref": "#/$defs/point"}, "end": {"$ref": "#/$defs/point"}}),
    },
    "optional_fields": _object(
        {
            "title": _text(20),
            "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
            "genre": {"enum": ["drama", "comedy", "action", "documentary"]},
        },
        required=["title"],
    ),
    "top_level_array": {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 99},
        "minItems": 2,
        "maxItems": 4,
    },
}

PROMPTS: dict[str, list[str]] = {
    "flat": ["Ann is 34 years old.", "Describe a person.", "Who wrote Hamlet?"],
    "enum": ["I love this phone!", "The food was cold.", "It is Tuesday."],
    "pattern": ["Make a ticket code.", "Flight code for Paris?", "Give me an ID."],
    "numbers": ["Weather in Cairo today?", "A cold, dry day.", "Describe a rainforest."],
    "boolean_optional": ["Is the sky blue?", "Can fish fly?", "Is 7 a prime number?"],
    "string_array": ["Name some fruits.", "Words about winter.", "List colors."],
    "nested": ["Where does Bob live?", "A person in Paris.", "Make up an address."],
    "object_array": ["How to make tea?", "Steps to plant a seed.", "How to wash hands?"],
    "ref": ["A line from 0,0 to 3,4.", "Move from -2,1 to 5,5.", "Draw a short line."],
    "optional_fields": ["Tell me about Titanic.", "A funny film.", "Name a movie."],
    "top_level_array": ["Some small numbers.", "Ages of three kids.", "Lottery numbers."],
}


def cases() -> list[tuple[str, str]]:
    """(schema name, prompt) for every schema and each of its prompts."""
    return [(name, prompt) for name, prompts in PROMPTS.items() for prompt in prompts]

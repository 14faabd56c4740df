"""Request and response bodies of the HTTP API as pydantic models (``/docs`` shows them), and the checks
that turn a body into one: the JSON is read no further than ``max_body_bytes``, every refusal is an
``ApiError`` naming the field (``texts[1]``, ``examples[0].label``) and, for a configured limit, the limit.

Texts and labels must be strings that encode as UTF-8 (a lone surrogate such as ``"\\ud800"`` is valid
JSON and is refused here, before it reaches the tokenizer or the database) and hold no NUL character.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Literal

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import PydanticCustomError

from .guard import ApiError, Limits

MAX_ID = 2**63 - 1  # ids and after_id fit a signed 64-bit integer (SQLite, PostgreSQL)
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")  # export names, matched with fullmatch


def check_string(value: str, what: str) -> str:
    if "\x00" in value:
        raise PydanticCustomError("invalid_text", "{what} holds a NUL character", {"what": what})
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PydanticCustomError(
            "invalid_text",
            "{what} is not valid Unicode (character {pos} is a lone surrogate)",
            {"what": what, "pos": exc.start},
        ) from None
    return value


def _text(value: str) -> str:
    check_string(value, "the text")
    if not value.strip():
        raise PydanticCustomError("invalid_text", "the text is empty; it needs some words")
    return value


def _label(value: str) -> str:
    value = check_string(value, "the label").strip()
    if not value:
        raise PydanticCustomError("invalid_label", "the label is an empty string; a label needs a name")
    return value


Text = Annotated[str, AfterValidator(_text)]
Label = Annotated[str, AfterValidator(_label)]
Strict = ConfigDict(strict=True)


# ---------------------------------------------------------------- requests
class PredictRequest(BaseModel):
    model_config = ConfigDict(
        strict=True, json_schema_extra={"example": {"texts": ["where is my card?"], "reject_below": 0.4, "top_k": 3}}
    )
    texts: list[Text] = Field(min_length=1, description="the texts to classify (up to --max-texts)")
    reject_below: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="a top score below this is answered with the reject label",
    )
    top_k: int = Field(3, ge=1, le=100, description="how many labels with scores to return per text")


class ExampleIn(BaseModel):
    model_config = ConfigDict(
        strict=True, json_schema_extra={"example": {"text": "my card was charged twice", "label": "double_charge"}}
    )
    text: Text
    label: Label


class ExamplesRequest(BaseModel):
    model_config = Strict
    examples: list[ExampleIn] = Field(min_length=1)


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(
        strict=True,
        json_schema_extra={"example": {"text": "charged twice again", "label": "double_charge", "predicted": "card"}},
    )
    text: Text
    label: Label = Field(description="the label a person corrected the prediction to")
    predicted: str | None = Field(None, description="what the service had predicted (not stored)")


class ExportRequest(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"example": {"name": "support-2026-12-03"}})
    name: str | None = Field(None, description="letters, digits, '.', '_' or '-' (up to 100); default: a timestamp")


class KeyRequest(BaseModel):
    model_config = ConfigDict(strict=True, json_schema_extra={"example": {"role": "write", "expires_in": 86400}})
    role: Literal["read", "write", "admin"]
    expires_in: float | None = Field(
        None,
        gt=0,
        le=100 * 365 * 86400,
        allow_inf_nan=False,
        description="seconds until the key expires (default: never)",
    )


EXAMPLE_LIST = TypeAdapter(Annotated[list[ExampleIn], Field(min_length=1)])


# ---------------------------------------------------------------- responses
class Score(BaseModel):
    label: str
    score: float


class Prediction(BaseModel):
    label: str
    score: float
    rejected: bool
    top: list[Score]


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    model_version: int


class AddResponse(BaseModel):
    ids: list[int]
    model_version: int
    applied: bool = Field(
        description="false when the head could not refit at once; the examples are stored and count from the next poll"
    )


class ExampleOut(BaseModel):
    id: int
    text: str | None = Field(description="null for the examples that came with the model directory")
    label: str
    source: Literal["model", "api", "feedback"]
    key_id: str | None
    created: float


class ExampleList(BaseModel):
    examples: list[ExampleOut]
    next_after_id: int | None = Field(description="pass as after_id for the next page; null on the last page")


class LabelCount(BaseModel):
    label: str
    examples: int


class LabelList(BaseModel):
    labels: list[LabelCount]


class DeletedExample(BaseModel):
    deleted: int
    model_version: int


class DeletedLabel(BaseModel):
    deleted: str
    examples: int
    model_version: int


class ExportResponse(BaseModel):
    path: str
    labels: int


class KeyCreated(BaseModel):
    key: str = Field(description="shown only now; only a salted hash is stored")
    id: str
    role: str
    expires: float | None


class KeyInfo(BaseModel):
    id: str
    role: str
    created: float
    expires: float | None
    revoked: float | None


class KeyList(BaseModel):
    keys: list[KeyInfo]


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    ready: bool
    checks: dict[str, bool]
    labels: int
    examples: int
    encoder: str
    examples_other_encoder: int
    model_version: int
    database_version: int
    synced_version: int


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    limit: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


REQUESTS = [PredictRequest, ExampleIn, ExamplesRequest, FeedbackRequest, ExportRequest, KeyRequest]


# ---------------------------------------------------------------- reading and checking
async def read_json(request: Request, limits: Limits, optional: bool = False):
    """The JSON body, read no further than ``max_body_bytes`` (``optional``: an empty body is {})."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise ApiError(
                413,
                "limit_exceeded",
                f"the request body passed {limits.max_body_bytes} bytes, the limit",
                limit="max_body_bytes",
            )
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        if optional:
            return {}
        raise ApiError(400, "invalid_json", "the request body is empty; send a JSON object", field="body")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the request body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise ApiError(400, "invalid_json", "the request body nests too deeply", field="body") from None
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        raise ApiError(
            400,
            "invalid_json",
            f"the request body holds a value Python refuses: {str(exc).split(':')[0]}",
            field="body",
        ) from None


def field_name(loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse(model, data, prefix: tuple = ()):
    """``data`` validated as ``model`` (a pydantic model or TypeAdapter); ApiError 422 naming the field."""
    try:
        return model.validate_python(data) if isinstance(model, TypeAdapter) else model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        loc = prefix + tuple(first.get("loc", ()))
        if first["type"] == "missing" and loc:  # name the field that is missing
            message = f"{field_name(loc)} is missing"
        elif first["type"] in ("model_type", "model_attributes_type", "dict_type"):
            message = f"{field_name(loc)} must be a JSON object, got {_kind(first.get('input'))}"
        else:
            message = f"{field_name(loc)}: {first['msg']}"
            if first["type"].endswith("_type") or first["type"] == "literal_error":
                message += f", got {_kind(first.get('input'))}"
        raise ApiError(422, "invalid_field", message, field=field_name(loc)) from None


def _kind(value) -> str:
    return (
        "null"
        if value is None
        else {
            bool: "a boolean",
            int: "a number",
            float: "a number",
            list: "a list",
            dict: "an object",
            str: "a string",
        }.get(type(value), type(value).__name__)
    )


def check_texts(texts: list[str], limits: Limits, name: str = "texts") -> None:
    """The configured limits on a list of texts (413 naming the limit)."""
    if len(texts) > limits.max_texts:
        raise ApiError(
            413,
            "limit_exceeded",
            f"{len(texts)} {name} in one request; the limit is {limits.max_texts}",
            field=name,
            limit="max_texts",
        )
    for i, t in enumerate(texts):
        if len(t) > limits.max_chars:
            raise ApiError(
                413,
                "limit_exceeded",
                f"{name}[{i}] has {len(t)} characters; the limit is {limits.max_chars}",
                field=f"{name}[{i}]",
                limit="max_chars",
            )


def check_label(label: str, limits: Limits, field: str = "label") -> str:
    if len(label) > limits.max_label_chars:
        raise ApiError(
            413,
            "limit_exceeded",
            f"{field} has {len(label)} characters; the limit is {limits.max_label_chars}",
            field=field,
            limit="max_label_chars",
        )
    return label


def check_examples(data, limits: Limits) -> list[tuple[str, str]]:
    """``{"text", "label"}``, a list of them, or ``{"examples": [...]}`` -> [(text, label)]."""
    if isinstance(data, dict) and "examples" in data:
        items, prefix = parse(ExamplesRequest, data).examples, "examples"
    elif isinstance(data, list):
        if len(data) > limits.max_texts:  # before validating thousands of items
            raise ApiError(
                413,
                "limit_exceeded",
                f"{len(data)} examples in one request; the limit is {limits.max_texts}",
                field="body",
                limit="max_texts",
            )
        items, prefix = parse(EXAMPLE_LIST, data), ""
    else:
        items, prefix = [parse(ExampleIn, data)], None
    name = prefix or "body"
    if len(items) > limits.max_texts:
        raise ApiError(
            413,
            "limit_exceeded",
            f"{len(items)} examples in one request; the limit is {limits.max_texts}",
            field=name,
            limit="max_texts",
        )
    for i, item in enumerate(items):
        where = "" if prefix is None else f"{prefix}[{i}]."
        if len(item.text) > limits.max_chars:
            raise ApiError(
                413,
                "limit_exceeded",
                f"{where}text has {len(item.text)} characters; the limit is {limits.max_chars}",
                field=f"{where}text",
                limit="max_chars",
            )
        check_label(item.label, limits, f"{where}label")
    return [(item.text, item.label) for item in items]


def check_query_label(label: str, limits: Limits, field: str = "label") -> str:
    """A label from a URL path or query: the same rules as a label in a body."""
    try:
        _label(label)
    except PydanticCustomError as exc:
        raise ApiError(422, "invalid_field", f"{field}: {exc.message()}", field=field) from None
    return check_label(label, limits, field)


def check_export_name(name) -> str:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ApiError(
            422,
            "invalid_field",
            f"name must be letters, digits, '.', '_' or '-' (up to 100, starting with a letter or digit), got {name!r}",
            field="name",
        )
    return name

"""The API's shared models: strict bodies (unknown fields refused, no type coercion, so
`"amount": 10.5` or `"amount": "10"` is an error, not a guess) and cursor-paged lists."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

Item = TypeVar("Item", bound=BaseModel)
# Ids are 64-bit; amounts at most what Stripe charges in one go ($999,999.99).
Id = Annotated[int, Field(ge=1, le=2**63 - 1)]
MinorUnits = Annotated[int, Field(ge=1, le=99_999_999, description="minor units (cents)")]


def _storable(value: object) -> object:
    """Text a database can keep as it came: no NUL (PostgreSQL refuses it in text) and no
    lone surrogates (which are not UTF-8)."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("must be valid Unicode text") from None
    return value


class Body(BaseModel):
    """A request body."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_storable(cls, value: object) -> object:
        return _storable(value)


class Query(BaseModel):
    """Query parameters: strings on the wire, converted to their types."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="after")
    @classmethod
    def _text_is_storable(cls, value: object) -> object:
        return _storable(value)


class Answer(BaseModel):
    """A response body."""

    model_config = ConfigDict(extra="forbid")


class PageQuery(Query):
    limit: int = Field(10, ge=1, le=100, description="at most this many (1-100)")
    starting_after: int | None = Field(
        None, ge=1, le=2**63 - 1, description="the id of the last item of the previous page"
    )


class Page(Answer, Generic[Item]):
    data: list[Item]
    has_more: bool


class ErrorDetail(Answer):
    code: str
    message: str
    param: str | None


class ErrorBody(Answer):
    error: ErrorDetail

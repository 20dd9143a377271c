"""The API's shared models: strict bodies (unknown fields refused, no type coercion, so
`"amount": 10.5` or `"amount": "10"` is an error, not a guess) and cursor-paged lists."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

Item = TypeVar("Item", bound=BaseModel)


class Body(BaseModel):
    """A request body."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Query(BaseModel):
    """Query parameters: strings on the wire, converted to their types."""

    model_config = ConfigDict(extra="forbid")


class Answer(BaseModel):
    """A response body."""

    model_config = ConfigDict(extra="forbid")


class PageQuery(Query):
    limit: int = Field(10, ge=1, le=100, description="at most this many (1-100)")
    starting_after: int | None = Field(
        None, ge=1, description="the id of the last item of the previous page"
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

"""Async inference: `POST /v1/jobs` queues a batch, `GET /v1/jobs/{id}` tells how it went."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from mlsd.errors import UnavailableError
from mlsd.serving.routes_v1 import ERRORS, service_of
from mlsd.serving.schemas import TransactionBody

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
RELATIVE_PARQUET: dict[str, Any] = {"pattern": r"^[^/\x00][^\x00]*\.parquet$"}


class JobRequest(BaseModel):
    """A batch to score later: transactions inline, or a Parquet file in the data folder
    (exactly one of the two, as the spec says)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {
                    "required": ["rows"],
                    "properties": {"rows": {"type": "array"}, "path": {"type": "null"}},
                },
                {
                    "required": ["path"],
                    "properties": {"path": {"type": "string"}, "rows": {"type": "null"}},
                },
            ]
        },
    )

    rows: Annotated[list[TransactionBody], Field(min_length=1, max_length=100_000)] | None = None
    #: (the spec narrows it to relative paths: an absolute one is taken when inside home)
    path: (
        Annotated[str, Field(min_length=1, max_length=1024, json_schema_extra=RELATIVE_PARQUET)]
        | None
    ) = None
    model: (
        Annotated[str, Field(max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")] | None
    ) = None


class JobBody(BaseModel):
    """A job's status; `results` inline once done (when small)."""

    job_id: str
    state: str
    submitted_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    total: int | None = None
    done: int = 0
    progress: float
    model: str | None = None
    results: list[dict[str, Any]] | None = None
    result_path: str | None = None
    error: str | None = None
    #: Runs started: 1 after a normal run, more when a restart or a dead worker made it run
    #: again (both queues count; 0 while queued).
    attempts: int | None = None


@router.post("", status_code=202, response_model=JobBody, responses=ERRORS)
def submit(request: Request, body: JobRequest) -> dict[str, Any]:
    """Queue a scoring job; answers at once with its id."""
    from mlsd.serving.jobs import JobSpec

    service = service_of(request)
    if service.jobs is None:
        raise UnavailableError("the job queue is not configured")
    if body.model is not None:
        service.check(body.model)  # 404 now rather than a failed job later
    rows = None if body.rows is None else [t.model_dump() for t in body.rows]
    job_id = service.jobs.submit(JobSpec(rows=rows, path=body.path, model=body.model))
    status: dict[str, Any] = service.jobs.get(job_id).to_dict()
    return status


@router.get("/{job_id}", response_model=JobBody, responses=ERRORS)
def status(
    request: Request, job_id: Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")]
) -> dict[str, Any]:
    """A job's state, progress and (once done) results."""
    service = service_of(request)
    if service.jobs is None:
        raise UnavailableError("the job queue is not configured")
    out: dict[str, Any] = service.jobs.get(job_id).to_dict()
    return out

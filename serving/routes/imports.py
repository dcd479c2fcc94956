"""History imports over HTTP: the same import as ``churnstream import`` (:mod:`churnstream.import_job`), run as a
job of the API process."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, HTTPException, UploadFile
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from churnstream.imports import parse_mapping
from serving.auth import require
from serving.deps import ImportJobsDep, SettingsDep

router = APIRouter(prefix="/v1", tags=["imports"], dependencies=[Depends(require("write"))])
JobId = Annotated[str, PathParam(pattern=r"^[0-9a-f]{16}$", description="the job id `POST /v1/imports` returned")]
SUFFIXES = (".csv", ".jsonl", ".ndjson", ".json", ".parquet")


def _save(upload: UploadFile, target: Path, limit: int) -> int:
    with open(target, "wb") as out:
        shutil.copyfileobj(upload.file, out, 1 << 20)
        size = out.tell()
    if size > limit:
        target.unlink()
        raise HTTPException(413, f"file: larger than CHURNSTREAM_API_MAX_IMPORT_BYTES ({limit:,} bytes)")
    return size


@router.post("/imports", status_code=202)
async def create_import(
    jobs: ImportJobsDep,
    settings: SettingsDep,
    file: UploadFile = File(..., description="a CSV (with a header), JSONL or Parquet export"),
    kind: Literal["", "page_view", "cart", "purchase"] = Form(
        "", description="the type of every row; default: column `type`"
    ),
    map: str = Form("", description="event field=column pairs, e.g. `user_id=client_id,ts=created_at`"),
    ts_format: str = Form("", description="strptime format of text timestamps; default ISO 8601"),
    tz: str = Form("UTC", description="time zone of timestamps without one"),
    dry_run: bool = Form(False, description="validate and report, send nothing"),
) -> dict[str, Any]:
    """Upload a history export and import it in the background: returns the job id at once; follow it with
    ``GET /v1/imports/{id}``."""
    name = Path(file.filename or "upload.csv").name
    if not name.lower().endswith(SUFFIXES):
        raise HTTPException(422, f"file: the name must end with one of {', '.join(SUFFIXES)}")
    try:
        mapping = parse_mapping(map)
    except ValueError as exc:
        raise HTTPException(422, f"map: {exc}") from exc
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(tz)
    except (KeyError, ValueError) as exc:
        raise HTTPException(422, f"tz: unknown time zone {tz!r}") from exc
    job_id, folder = jobs.new_dir()
    size = await run_in_threadpool(_save, file, folder / name, settings.api_max_import_bytes)
    jobs.start(job_id, folder / name, kind or None, mapping, ts_format or None, tz, dry_run)
    return {"job_id": job_id, "bytes": size, "status": f"/v1/imports/{job_id}"}


@router.get("/imports/{job_id}")
async def import_status(job_id: JobId, jobs: ImportJobsDep) -> dict[str, Any]:
    """The job's phase (`queued`, `validating`, `checking`, `sending`, `done`, `failed`) and counts: rows, valid,
    rejected, already imported, new, sent, rows per second."""
    status = await jobs.status(job_id)
    if status is None:
        raise HTTPException(404, f"job_id: no import job {job_id}")
    status.pop("rejects", None)  # a server path
    return status | {"rejects_url": f"/v1/imports/{job_id}/rejects"}


@router.get("/imports/{job_id}/rejects", response_class=FileResponse)
async def import_rejects(job_id: JobId, jobs: ImportJobsDep) -> FileResponse:
    """The job's reject report (CSV: line, field, reason, detail), once validation is done."""
    path = jobs.rejects(job_id)
    if path is None:
        raise HTTPException(404, f"job_id: no reject report for job {job_id} (yet)")
    return FileResponse(path, media_type="text/csv", filename=path.name)

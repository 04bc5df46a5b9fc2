"""What Dagster stores never holds a secret, and a failure reads as its message.

``guarded`` wraps an asset or op body:
- every ``context.log`` line passes through the scrubber (``ops_project.common.scrub``);
- string metadata of the result and of its check results is scrubbed;
- an ``OpsError`` becomes a ``Failure`` whose description is the message written for on-call (what,
  where, what to do), without a framework traceback; a ``Failure`` keeps its description and metadata,
  scrubbed; any other exception becomes a ``Failure`` that names its type, with the scrubbed traceback in
  its metadata. The chain of causes is not kept: a library's own message may hold a URL or a key.
"""

from __future__ import annotations

import functools
import inspect
import logging
import traceback

from dagster import (
    AssetCheckEvaluation,
    AssetCheckResult,
    AssetMaterialization,
    AssetObservation,
    Failure,
    MaterializeResult,
    MetadataValue,
    Output,
)
from dagster._core.definitions.metadata.metadata_value import (
    JsonMetadataValue,
    MarkdownMetadataValue,
    PathMetadataValue,
    TextMetadataValue,
    UrlMetadataValue,
)
from dagster._record import copy

from ops_project.common.errors import OpsError
from ops_project.common.scrub import scrub


class _ScrubFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), ()
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = scrub("".join(traceback.format_exception(*record.exc_info)))
            record.exc_info = None
        return True


_FILTER = _ScrubFilter()


def _scrub_json(value):
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub_json(v) for v in value]
    return value


def scrub_metadata(metadata):
    if not metadata:
        return metadata
    out = {}
    for key, value in metadata.items():
        if isinstance(value, str):
            value = scrub(value)
        elif isinstance(value, MarkdownMetadataValue):
            value = MetadataValue.md(scrub(value.value or ""))
        elif isinstance(value, TextMetadataValue):
            value = MetadataValue.text(scrub(value.value or ""))
        elif isinstance(value, PathMetadataValue):
            value = MetadataValue.path(scrub(str(value.value)))
        elif isinstance(value, UrlMetadataValue):
            value = MetadataValue.url(scrub(value.value))
        elif isinstance(value, JsonMetadataValue | dict | list):
            value = MetadataValue.json(_scrub_json(value.value if isinstance(value, JsonMetadataValue) else value))
        out[key] = value
    return out


def _clean(result):
    if isinstance(result, MaterializeResult):
        checks = [c._replace(description=scrub(c.description) if c.description else c.description,
                             metadata=scrub_metadata(c.metadata)) for c in (result.check_results or [])]
        return result._replace(metadata=scrub_metadata(result.metadata), check_results=checks)
    if isinstance(result, AssetCheckResult):
        return result._replace(description=scrub(result.description) if result.description else None,
                               metadata=scrub_metadata(result.metadata))
    if isinstance(result, AssetObservation | AssetMaterialization):
        return result._replace(metadata=scrub_metadata(result.metadata))
    if isinstance(result, AssetCheckEvaluation):  # a record, not a tuple
        return copy(result, description=scrub(result.description) if result.description else None,
                    metadata=scrub_metadata(result.metadata))
    if isinstance(result, Output):
        return Output(result.value, output_name=result.output_name, metadata=scrub_metadata(result.metadata),
                      data_version=result.data_version, tags=result.tags)
    return result


def _failure(exc: BaseException) -> Failure:
    if isinstance(exc, Failure):
        return Failure(description=scrub(exc.description or ""), metadata=scrub_metadata(exc.metadata),
                       allow_retries=exc.allow_retries)
    if isinstance(exc, OpsError):
        return Failure(description=str(exc), metadata={"error": type(exc).__name__})
    return Failure(description=scrub(f"{type(exc).__name__}: {exc}"),
                   metadata={"error": type(exc).__name__,
                             "traceback": MetadataValue.text(scrub("".join(traceback.format_exception(exc))))})


def _attach(args) -> None:
    log = getattr(args[0], "log", None) if args else None
    if isinstance(log, logging.Logger) and _FILTER not in log.filters:
        log.addFilter(_FILTER)


def guarded(fn):
    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen_wrapper(*args, **kwargs):
            _attach(args)
            try:
                for item in fn(*args, **kwargs):
                    yield _clean(item)
            except Exception as exc:  # noqa: BLE001 - every error leaves as a scrubbed Failure
                raise _failure(exc) from None

        return gen_wrapper

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        _attach(args)
        try:
            return _clean(fn(*args, **kwargs))
        except Exception as exc:  # noqa: BLE001 - every error leaves as a scrubbed Failure
            raise _failure(exc) from None

    return wrapper

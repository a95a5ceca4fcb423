"""LOG_FORMAT=text: every operator line carries its context (finding 5 of issue 19).

Before, the text formatter printed ``INFO irods_ingest_operator.reconcile event`` and dropped
the job, the reason and the message the line was logged with.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from irods_ingest import logs


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:], root.level = handlers, level


def test_text_lines_carry_the_job_the_reason_and_the_message(captured: io.StringIO) -> None:
    logs.configure("INFO", json_format=False, stream=captured, object_field="job")
    logging.getLogger("irods_ingest_operator.reconcile").info("event", extra={
        "job": "lab/tagging", "reason": "HandlerError", "type": "Warning",
        "event_message": 'spec.handler.configMapRef: ConfigMap lab/tagging-handler not found (create it, or fix the name)'})
    assert captured.getvalue().rstrip("\n") == (
        'INFO irods_ingest_operator.reconcile event job=lab/tagging reason=HandlerError type=Warning '
        'event_message="spec.handler.configMapRef: ConfigMap lab/tagging-handler not found (create it, or fix the name)"')


def test_kopf_lines_name_their_object(captured: io.StringIO) -> None:
    """kopf logs per object with a k8s_ref mapping (and a settings object): shown as job=ns/name."""
    logs.configure("INFO", json_format=False, stream=captured, object_field="job")
    ref = {"apiVersion": "ingest.irods.dev/v1alpha1", "kind": "SyncJob", "name": "ingest", "uid": "u", "namespace": "lab"}
    logging.getLogger("kopf.objects").info("Handler 'reconcile' succeeded.", extra={
        "k8s_ref": ref, "k8s_skip": False, "settings": object()})
    assert captured.getvalue().rstrip("\n") == "INFO kopf.objects Handler 'reconcile' succeeded. job=lab/ingest k8s_skip=False"


def test_json_lines_carry_the_same_context(captured: io.StringIO) -> None:
    logs.configure("INFO", stream=captured, object_field="job")
    logging.getLogger("kopf.objects").warning("Timer 'refresh' failed", extra={"k8s_ref": {"name": "x", "namespace": "n"}})
    line = json.loads(captured.getvalue())
    assert (line["level"], line["event"], line["job"]) == ("warning", "Timer 'refresh' failed", "n/x")


def test_values_with_spaces_quotes_or_newlines_stay_on_one_line(captured: io.StringIO) -> None:
    logs.configure("INFO", json_format=False, stream=captured)
    logging.getLogger("x").info("e", extra={"error": 'a "b"\nc=d', "n": 3})
    assert captured.getvalue() == 'INFO x e error="a \\"b\\"\\nc=d" n=3\n'

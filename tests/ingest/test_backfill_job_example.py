"""The backfill Job example (deploy/k8s/examples/backfill), rendered with kustomize and
validated strictly offline, as the DLQ replay one is: the worker's namespace, image and
ConfigMap, a command line the CLI accepts with settings that validate, the progress file on
the claimed volume, the credentials from a Secret."""

from __future__ import annotations

import posixpath
from typing import Any

from consumer.cli.main import _parser
from consumer.config import BackfillSettings, build
from consumer.ingest.page_sender import STOP_GRACE_S
from consumer.ingest.voucherify_api import APP_ID_ENV, APP_TOKEN_ENV
from tests.support.kustomize import K8S_VERSION, _kubernetes_validate, _render

EXAMPLE = "examples/backfill"
WORKER = "customer-activity-consumer"


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def _only(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def test_backfill_job_example_validates_and_matches_the_worker() -> None:
    docs = _render(EXAMPLE)
    job, claim = _only(docs, "Job"), _only(docs, "PersistentVolumeClaim")
    kv = _kubernetes_validate()
    kv.validate(job, K8S_VERSION, strict=True)
    kv.validate(claim, K8S_VERSION, strict=True)
    deployment = _named(docs, "Deployment", WORKER)
    worker = next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "consumer")
    (backfill,) = job["spec"]["template"]["spec"]["containers"]
    # The worker's namespace, image and ConfigMap.
    namespace = deployment["metadata"]["namespace"]
    assert job["metadata"]["namespace"] == claim["metadata"]["namespace"] == namespace == "customer-activity"
    assert backfill["image"] == worker["image"]
    assert backfill["envFrom"] == [e for e in worker["envFrom"] if "configMapRef" in e]
    config = _named(docs, "ConfigMap", backfill["envFrom"][0]["configMapRef"]["name"])

    # A command line the CLI accepts, whose settings validate with the pod's environment.
    args = _parser().parse_args(backfill["args"])
    assert args.command == "backfill" and args.topic and not args.dry_run
    literals = {e["name"]: e["value"] for e in backfill["env"] if "value" in e}
    settings = build(vars(args), environ={**config["data"], **literals}, cls=BackfillSettings)
    assert settings.topic and settings.since and settings.until

    # The progress file is on the claimed volume (the root filesystem is read-only).
    pod = job["spec"]["template"]["spec"]
    mounts = {m["mountPath"]: m["name"] for m in backfill["volumeMounts"]}
    folder = posixpath.dirname(settings.progress_file)
    assert folder in mounts, f"{settings.progress_file} is not on a mounted volume"
    (volume,) = [v for v in pod["volumes"] if v["name"] == mounts[folder]]
    assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"] != 0
    assert backfill["securityContext"]["readOnlyRootFilesystem"] is True

    # Credentials only from Secrets; exit 2 (bad credentials or settings) is not retried.
    secret_env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in backfill["env"] if "valueFrom" in e}
    assert {APP_ID_ENV, APP_TOKEN_ENV} <= secret_env.keys() and not {APP_ID_ENV, APP_TOKEN_ENV} & literals.keys()
    assert pod["restartPolicy"] == "Never"
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob" and rule["onExitCodes"]["values"] == [2]
    assert rule["onExitCodes"]["containerName"] == backfill["name"]
    # SIGTERM: the page in hand is finished within the grace period.
    assert pod["terminationGracePeriodSeconds"] > STOP_GRACE_S
    # Only the Job and its volume are new: the rest is the production overlay unchanged.
    new = {d["kind"] for d in docs} - {d["kind"] for d in _render("overlays/production")}
    assert new == {"Job", "PersistentVolumeClaim"}

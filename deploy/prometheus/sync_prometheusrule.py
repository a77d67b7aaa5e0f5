"""Regenerate the PrometheusRule in deploy/k8s/components/prometheus-operator from alerts.yml.

    python deploy/prometheus/sync_prometheusrule.py          # rewrite prometheusrule.yaml
    python deploy/prometheus/sync_prometheusrule.py --check  # exit 1 if it is out of date

Needs PyYAML. tests/deploy/test_deploy.py checks the two files agree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE / "alerts.yml"
TARGET = HERE.parent / "k8s" / "components" / "prometheus-operator" / "prometheusrule.yaml"

HEADER = (
    "# GENERATED from deploy/prometheus/alerts.yml by deploy/prometheus/sync_prometheusrule.py.\n"
    "# Do not edit by hand: edit alerts.yml and re-run the script.\n"
)


class _Dumper(yaml.SafeDumper):  # type: ignore[misc]
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def render() -> str:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    doc: dict[str, Any] = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "customer-activity-consumer",
            "labels": {
                "app.kubernetes.io/name": "customer-activity-consumer",
                "app.kubernetes.io/component": "worker",
            },
        },
        "spec": {"groups": groups},
    }
    body: str = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)
    return HEADER + body


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"{TARGET} is out of date; run {Path(__file__).name}", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text)
    print(f"wrote {TARGET}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

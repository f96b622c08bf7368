"""The chart renders, with default values and with both examples, into objects that Kubernetes
accepts, and the workload carries what a safe bridge cluster needs."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from tests.deploy.chart import (
    CHART,
    DEFAULTS,
    Manifest,
    Renderer,
    RenderError,
    example,
    find,
    kinds,
    renderer,
)

# Chart.yaml's kubeVersion: the chart is checked against the oldest Kubernetes at or above it
# that the validator ships, and against the newest.
OLDEST_KUBERNETES = (1, 25)
# Custom resources have no schema in kubernetes-validate; their shape is checked below.
CUSTOM_KINDS = {"ServiceMonitor"}

VALUE_SETS = {
    "defaults": {},
    "values-full": example("values-full.yaml"),
    "values-replica": example("values-replica.yaml"),
}


@pytest.fixture(scope="module")
def render() -> Renderer:
    return renderer()


@functools.cache
def _rendered(render: Renderer, name: str) -> tuple[Manifest, ...]:
    return tuple(render(VALUE_SETS[name]))


def rendered(render: Renderer, name: str) -> list[Manifest]:
    return list(_rendered(render, name))


def container(workload: Manifest) -> dict[str, Any]:
    pod = workload["spec"]["template"]["spec"]
    (bridge,) = [c for c in pod["containers"] if c["name"] == "bridge"]
    return dict(bridge)


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_every_object_validates_against_the_kubernetes_schemas(render: Renderer, name: str) -> None:
    kubernetes_validate = pytest.importorskip(
        "kubernetes_validate", reason="pip install kubernetes-validate"
    )
    versions = _kubernetes_versions(kubernetes_validate.utils.all_versions())
    manifests = rendered(render, name)
    assert manifests
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                pytest.fail(f"{manifest['kind']} (k8s {version}) at {where}: {exc.message}")


def test_default_values_render_a_worker_cluster(render: Renderer) -> None:
    manifests = rendered(render, "defaults")
    assert kinds(manifests) == [
        "ConfigMap",
        "Deployment",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    ]
    deployment = find(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == DEFAULTS["replicaCount"]
    assert container(deployment)["args"][-3:] == ["run", "-c", "/etc/bridge/bridge.yaml"]
    # A new pod is up before an old one drains and hands its leases over.
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert find(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_the_pod_runs_locked_down(render: Renderer) -> None:
    for name in VALUE_SETS:
        workload = _workload(rendered(render, name))
        pod = workload["spec"]["template"]["spec"]
        bridge = container(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert bridge["securityContext"]["readOnlyRootFilesystem"] is True
        assert bridge["securityContext"]["allowPrivilegeEscalation"] is False
        assert bridge["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert pod["automountServiceAccountToken"] is False
        mounts = {m["mountPath"]: m["name"] for m in bridge["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
        assert "configMap" in volumes[mounts["/etc/bridge"]], name


def test_service_links_are_off_so_no_stray_bridge_variables_reach_the_config(
    render: Renderer,
) -> None:
    # A Service named bridge-* would inject BRIDGE_*_SERVICE_HOST, which bridge would read as
    # configuration overrides and refuse as unknown keys.
    for name in VALUE_SETS:
        assert (
            _workload(rendered(render, name))["spec"]["template"]["spec"]["enableServiceLinks"]
            is False
        )


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_probes_and_service_target_the_configured_metrics_port(render: Renderer, name: str) -> None:
    values = VALUE_SETS[name]
    config_key = "replicaConfig" if values.get("mode") == "replica" else "config"
    port = {**DEFAULTS[config_key], **values.get(config_key, {})}.get("metrics", {}).get(
        "port", 9400
    )
    manifests = rendered(render, name)
    bridge = container(_workload(manifests))
    assert bridge["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert bridge["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert bridge["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = find(manifests, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    # Pods that are not ready are scraped too: that is when their metrics matter.
    assert service["spec"]["publishNotReadyAddresses"] is True


def test_the_grace_period_outlasts_the_drain_and_is_configurable(render: Renderer) -> None:
    default = _workload(rendered(render, "defaults"))["spec"]["template"]["spec"]
    assert default["terminationGracePeriodSeconds"] == 60
    full = _workload(rendered(render, "values-full"))["spec"]["template"]["spec"]
    assert full["terminationGracePeriodSeconds"] == 90


def test_a_config_change_rolls_the_pods(render: Renderer) -> None:
    def checksum(values: dict[str, Any]) -> str:
        workload = _workload(render(values))
        return str(workload["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    before = checksum({})
    assert checksum({}) == before
    assert checksum({"config": {"polling": {"max_records": 500}}}) != before
    assert checksum({"replicaCount": 5}) == before


def test_the_config_map_holds_the_config_values(render: Renderer) -> None:
    import yaml

    config_map = find(rendered(render, "values-full"), "ConfigMap")
    assert yaml.safe_load(config_map["data"]["bridge.yaml"]) == VALUE_SETS["values-full"]["config"]
    replica = find(rendered(render, "values-replica"), "ConfigMap")
    assert (
        yaml.safe_load(replica["data"]["bridge.yaml"])
        == VALUE_SETS["values-replica"]["replicaConfig"]
    )


def test_topology_spread_gets_the_release_selector_unless_given_one(render: Renderer) -> None:
    deployment = find(rendered(render, "values-full"), "Deployment")
    zone, host = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert zone["labelSelector"] == {"matchLabels": deployment["spec"]["selector"]["matchLabels"]}
    assert (
        host["labelSelector"]
        == VALUE_SETS["values-full"]["topologySpreadConstraints"][1]["labelSelector"]
    )


def test_full_values_render_every_optional_object(render: Renderer) -> None:
    manifests = rendered(render, "values-full")
    assert kinds(manifests) == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ]
    deployment = find(manifests, "Deployment")
    # The autoscaler owns the count; a replicas field would fight it on every upgrade.
    assert "replicas" not in deployment["spec"]
    hpa = find(manifests, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    account = find(manifests, "ServiceAccount")
    assert "eks.amazonaws.com/role-arn" in account["metadata"]["annotations"]
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"]
        == (account["metadata"]["name"])
    )


def test_the_service_monitor_scrapes_the_metrics_service(render: Renderer) -> None:
    manifests = rendered(render, "values-full")
    monitor = find(manifests, "ServiceMonitor")
    service = find(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == "monitoring"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["bridge"]}
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert endpoint["path"] == "/metrics"


def test_replica_values_render_a_daemon_set_running_bridge_replica(render: Renderer) -> None:
    manifests = rendered(render, "values-replica")
    assert kinds(manifests) == ["ConfigMap", "DaemonSet", "Service", "ServiceAccount"]
    daemon_set = find(manifests, "DaemonSet")
    assert "replicas" not in daemon_set["spec"]
    assert container(daemon_set)["args"][-3:] == ["replica", "-c", "/etc/bridge/bridge.yaml"]
    pod = daemon_set["spec"]["template"]["spec"]
    assert "topologySpreadConstraints" not in pod
    data = next(v for v in pod["volumes"] if v["name"] == "data")
    assert data["hostPath"]["path"] == "/var/lib/bridge/orders"
    # The kubelet creates the host directory as root; only this init container runs as root,
    # with CHOWN as its one capability.
    (owner,) = pod["initContainers"]
    assert owner["command"] == ["chown", "10001:10001", "/var/lib/bridge"]
    assert owner["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}


def test_rules_the_schema_cannot_express_fail_the_render(render: Renderer) -> None:
    with pytest.raises(RenderError, match="autoscaling"):
        render({"kind": "DaemonSet", "autoscaling": {"enabled": True}})
    with pytest.raises(RenderError, match="claimName"):
        render({"data": {"type": "persistentVolumeClaim"}})
    with pytest.raises(RenderError, match=r"service\.enabled"):
        render({"service": {"enabled": False}, "serviceMonitor": {"enabled": True}})


def test_helm_lint_finds_nothing_above_info() -> None:
    helm_python = pytest.importorskip("helm_python", reason="pip install helm-python-sdk")
    for values in VALUE_SETS.values():
        report = helm_python.lint(CHART, values, strict=True)
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems, problems
        assert not report["errors"]


def _kubernetes_versions(shipped: list[str]) -> list[str]:
    supported = [v for v in shipped if tuple(map(int, v.split(".")[:2])) >= OLDEST_KUBERNETES]
    assert supported, f"kubernetes-validate ships no schema for Kubernetes >= {OLDEST_KUBERNETES}"
    return sorted({supported[0], supported[-1]})


def _workload(manifests: list[Manifest]) -> Manifest:
    (workload,) = [m for m in manifests if m["kind"] in {"Deployment", "DaemonSet"}]
    return workload

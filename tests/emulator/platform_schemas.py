"""Strict models of the Cloud Run and Knative resources that ``deploy/`` holds.

Why not a published schema: the Python packages that carry the Knative CRDs' schemas,
cloudcoil's generated pydantic models (cloudcoil-models-knative-serving and -eventing), raise
a TypeError on a valid Service with this project's pydantic; @kubernetes-models/knative on npm
validates against them but would bring Node and npm into ``make setup``; Cloud Run publishes
no schema for its annotations. So these are strict pydantic models of exactly the fields
``deploy/`` uses, with the rules the platforms document for them (names, ranges, the Cloud Run
annotations' values): an unknown field, a misspelt key or a value out of range fails.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DNS_LABEL = r"^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$"
"""Cloud Run's service names (and a Kubernetes DNS-1035 label within its length)."""
QUANTITY_CPU = r"^(\d+m|\d+(\.\d+)?)$"
QUANTITY_MEMORY = r"^\d+(Ki|Mi|Gi)$"
VARIABLE = r"^[A-Z_][A-Z0-9_]*$"
PLACEHOLDER_OR_URL = r"^(\$\{[A-Z_]+\}|https?://\S+|[a-z][a-z0-9_]*)$"
"""A value in a definition: a placeholder, a URL or a lower-case mode word (``OUTBOUND_AUTH``'s
``google``); never anything shaped like a key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SecretKeyRef(_Strict):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,255}$")
    key: str = Field(min_length=1)
    optional: bool | None = None


class ValueFrom(_Strict):
    secretKeyRef: SecretKeyRef


class EnvVar(_Strict):
    name: str = Field(pattern=VARIABLE)
    value: str | None = Field(default=None, pattern=PLACEHOLDER_OR_URL)
    valueFrom: ValueFrom | None = None

    @model_validator(mode="after")
    def _one_source(self) -> EnvVar:
        if (self.value is None) == (self.valueFrom is None):
            raise ValueError("an env entry has exactly one of value and valueFrom")
        return self


class Port(_Strict):
    name: Literal["http1", "h2c"] | None = None
    containerPort: int = Field(ge=1, le=65535)


class Limits(_Strict):
    cpu: str = Field(pattern=QUANTITY_CPU)
    memory: str = Field(pattern=QUANTITY_MEMORY)


class Resources(_Strict):
    limits: Limits


class HttpGet(_Strict):
    path: str = Field(pattern=r"^/")


class Probe(_Strict):
    httpGet: HttpGet
    periodSeconds: int | None = Field(default=None, ge=1, le=240)
    failureThreshold: int | None = Field(default=None, ge=1)


class Container(_Strict):
    image: str = Field(pattern=r"^\$\{IMAGE_REPOSITORY\}/[a-z0-9._/-]+:\$\{TAG\}$")
    ports: list[Port] = Field(min_length=1, max_length=1)
    resources: Resources
    env: list[EnvVar] = []
    startupProbe: Probe | None = None
    readinessProbe: Probe | None = None

    @model_validator(mode="after")
    def _unique_env(self) -> Container:
        names = [entry.name for entry in self.env]
        if len(names) != len(set(names)):
            raise ValueError(f"a variable is set twice: {names}")
        return self


class RevisionSpec(_Strict):
    containerConcurrency: int = Field(ge=0, le=1000)
    timeoutSeconds: int = Field(ge=1, le=3600)
    serviceAccountName: str | None = None
    containers: list[Container] = Field(min_length=1, max_length=1)


class TemplateMeta(_Strict):
    annotations: dict[str, str]


class Template(_Strict):
    metadata: TemplateMeta
    spec: RevisionSpec


class ServiceSpec(_Strict):
    template: Template


class Meta(_Strict):
    name: str = Field(pattern=DNS_LABEL)
    namespace: str | None = Field(default=None, pattern=DNS_LABEL)
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class KnativeService(_Strict):
    """``serving.knative.dev/v1`` ``Service``, the shape Cloud Run's YAML also takes."""

    apiVersion: Literal["serving.knative.dev/v1"]
    kind: Literal["Service"]
    metadata: Meta
    spec: ServiceSpec


class CloudRunService(KnativeService):
    """A Cloud Run service: its annotations take the values Cloud Run documents."""

    @model_validator(mode="after")
    def _cloud_run_rules(self) -> CloudRunService:
        ingress = self.metadata.annotations.get("run.googleapis.com/ingress")
        if ingress not in ("all", "internal", "internal-and-cloud-load-balancing"):
            raise ValueError(f"run.googleapis.com/ingress: {ingress!r}")
        revision = self.spec.template
        scale = revision.metadata.annotations.get("autoscaling.knative.dev/maxScale", "1")
        if not scale.isdigit():
            raise ValueError(f"autoscaling.knative.dev/maxScale: {scale!r} is not a number")
        container = revision.spec.containers[0]
        cpu = container.resources.limits.cpu
        if cpu not in ("1", "2", "4", "6", "8"):
            raise ValueError(f"cpu {cpu!r}: Cloud Run takes whole CPUs with concurrency > 1")
        for entry in container.env:
            if entry.valueFrom and not (
                entry.valueFrom.secretKeyRef.key == "latest"
                or entry.valueFrom.secretKeyRef.key.isdigit()
            ):
                raise ValueError(f"{entry.name}: a secret's key is its version")
        return self


class Reference(_Strict):
    apiVersion: str
    kind: str
    name: str = Field(pattern=DNS_LABEL)


class Destination(_Strict):
    ref: Reference


class SinkBindingSpec(_Strict):
    subject: Reference
    sink: Destination


class SinkBinding(_Strict):
    apiVersion: Literal["sources.knative.dev/v1"]
    kind: Literal["SinkBinding"]
    metadata: Meta
    spec: SinkBindingSpec


class Filter(_Strict):
    attributes: dict[str, str]


class TriggerSpec(_Strict):
    broker: str
    filter: Filter
    subscriber: Destination


class Trigger(_Strict):
    apiVersion: Literal["eventing.knative.dev/v1"]
    kind: Literal["Trigger"]
    metadata: Meta
    spec: TriggerSpec


class Broker(_Strict):
    apiVersion: Literal["eventing.knative.dev/v1"]
    kind: Literal["Broker"]
    metadata: Meta

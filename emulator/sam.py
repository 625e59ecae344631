"""``deploy/sam/template.yaml``: every function on AWS Lambda, from the bundles.

Each function is an ``AWS::Serverless::Function`` built from its bundle,
``dist/functions/<name>/`` (``agentorch package``): ``main.handler`` over its ASGI app, its
``requirements.txt`` installed by ``sam build``. Each has a Function URL: ``AWS_IAM`` for the
gateway and the agents, which the orchestrator's role may invoke, ``NONE`` for the orchestrator.
The orchestrator's ``GATEWAY_URL`` and ``<NAME>_URL`` are the others' Function URLs. Tasks also
arrive on an SQS queue (its failures reported per message, ``ReportBatchItemFailures``; a
message that keeps failing goes to a dead-letter queue). A secret is a parameter naming a
Secrets Manager secret, resolved at deploy time (a dynamic reference); left empty, the variable
is not set. Lambda sets ``AWS_REGION`` and the role's credentials itself.
"""

from __future__ import annotations

import re
from typing import Any

from emulator.contract import Variable, function_variables
from emulator.definitions import TIMEOUT_S, identity_env, public
from shared.manifest import Function, Manifest

RUNTIME = "python3.11"
BUNDLES = "../../dist/functions"
"""The bundles, relative to this template (``agentorch package`` writes them)."""
RESERVED = frozenset(
    {
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
    }
)
"""Lambda's own variables: a function may not set them."""
QUEUE_RECEIVES = 5
"""A task message that failed this many times goes to the dead-letter queue."""


def logical_id(name: str) -> str:
    """A CloudFormation resource name: ``data_processor`` -> ``DataProcessor``."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name) if part)


def parameter(variable: Variable) -> str:
    return logical_id(variable.name.lower()) + "Secret"


def memory_mb(memory: str) -> int:
    number, unit = int(memory[:-1]), memory[-1]
    return {"K": max(128, number // 1024), "M": number, "G": number * 1024}[unit]


def _secret(variable: Variable) -> dict[str, Any]:
    reference = f"{{{{resolve:secretsmanager:${{{parameter(variable)}}}:SecretString}}}}"
    return {
        "Fn::If": [f"Has{parameter(variable)}", {"Fn::Sub": reference}, {"Ref": "AWS::NoValue"}]
    }


def _secrets(manifest: Manifest) -> dict[str, Variable]:
    found: dict[str, Variable] = {}
    for function in manifest.functions:
        for variable in function_variables(function, manifest):
            if variable.secret and variable.name not in RESERVED:
                found.setdefault(parameter(variable), variable)
    return found


def _function(function: Function, manifest: Manifest) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for variable in function_variables(function, manifest):
        if variable.wired:
            url = f"{logical_id(variable.wired)}Url.FunctionUrl"
            variables[variable.name] = {"Fn::GetAtt": url}
        elif variable.secret and variable.name not in RESERVED:
            variables[variable.name] = _secret(variable)
    variables.update(identity_env(function, "aws"))
    properties: dict[str, Any] = {
        "CodeUri": f"{BUNDLES}/{function.name}/",
        "Handler": "main.handler",
        "MemorySize": memory_mb(manifest.limits(function).memory),
        "FunctionUrlConfig": {"AuthType": "NONE" if public(function) else "AWS_IAM"},
    }
    if variables:
        properties["Environment"] = {"Variables": variables}
    if function.kind == "gateway":
        properties["Policies"] = [
            _allow(["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"], "*")
        ]
    if public(function):
        private = [f for f in manifest.functions if not public(f)]
        arns = [{"Fn::GetAtt": f"{logical_id(f.name)}.Arn"} for f in private]
        properties["Policies"] = [_allow(["lambda:InvokeFunctionUrl"], arns)]
        properties["Events"] = {
            "Tasks": {
                "Type": "SQS",
                "Properties": {
                    "Queue": {"Fn::GetAtt": "TaskQueue.Arn"},
                    "BatchSize": 10,
                    "FunctionResponseTypes": ["ReportBatchItemFailures"],
                },
            }
        }
    return {"Type": "AWS::Serverless::Function", "Properties": properties}


def _allow(actions: list[str], resource: Any) -> dict[str, Any]:
    return {"Statement": [{"Effect": "Allow", "Action": actions, "Resource": resource}]}


def sam_template(manifest: Manifest) -> dict[str, Any]:
    secrets = _secrets(manifest)
    orchestrator = logical_id(manifest.of_kind("orchestrator").name)
    resources: dict[str, Any] = {
        logical_id(f.name): _function(f, manifest) for f in manifest.functions
    }
    resources["TaskQueue"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {
            # Six times the function's timeout, as Lambda advises for a queue it reads.
            "VisibilityTimeout": 6 * TIMEOUT_S,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": "TaskDeadLetters.Arn"},
                "maxReceiveCount": QUEUE_RECEIVES,
            },
        },
    }
    resources["TaskDeadLetters"] = {
        "Type": "AWS::SQS::Queue",
        "Properties": {"MessageRetentionPeriod": 14 * 24 * 3600},
    }
    return {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": "Agent Orchestrator: the gateway, the orchestrator and the agents on Lambda",
        "Parameters": {
            name: {
                "Type": "String",
                "Default": "",
                "Description": f"Secrets Manager secret holding {v.name}; empty: not set",
            }
            for name, v in secrets.items()
        },
        "Conditions": {
            f"Has{name}": {"Fn::Not": [{"Fn::Equals": [{"Ref": name}, ""]}]} for name in secrets
        },
        "Globals": {
            "Function": {
                "Runtime": RUNTIME,
                "Timeout": TIMEOUT_S,
                "Architectures": ["x86_64"],
            }
        },
        "Resources": resources,
        "Outputs": {
            "OrchestratorUrl": {
                "Description": "The orchestrator's Function URL (public)",
                "Value": {"Fn::GetAtt": f"{orchestrator}Url.FunctionUrl"},
            },
            "TaskQueueUrl": {
                "Description": "Send a task here as an SQS message",
                "Value": {"Ref": "TaskQueue"},
            },
        },
    }

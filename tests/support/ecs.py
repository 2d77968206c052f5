"""ECS requests as the provider sends them, for botocore's validation of what the program registers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def strategy_of_props(props: Mapping[str, Any]) -> list[tuple[str, int, int]]:
    return [
        (str(s["capacityProvider"]), int(s.get("base", 0)), int(s["weight"]))
        for s in props.get("capacityProviderStrategies") or []
    ]


def create_service_request(props: Mapping[str, Any]) -> dict[str, Any]:
    """The ECS service's inputs as the CreateService request the provider sends (numbers as integers, the
    deployment alarms and circuit breaker inside ``deploymentConfiguration``), with a launch type or a capacity
    provider strategy: ECS takes one or the other.
    https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html"""
    configuration = dict(props.get("deploymentConfiguration") or {})
    if "bakeTimeInMinutes" in configuration:
        configuration["bakeTimeInMinutes"] = int(configuration["bakeTimeInMinutes"])
    for key, minutes in (
        ("canaryConfiguration", "canaryBakeTimeInMinutes"),
        ("linearConfiguration", "stepBakeTimeInMinutes"),
    ):
        if key in configuration:
            configuration[key] = {**configuration[key], minutes: int(configuration[key][minutes])}
    for key in ("alarms", "deploymentCircuitBreaker"):
        if props.get(key):
            configuration[key] = props[key]
    placement: dict[str, Any] = {}
    if "launchType" in props:
        placement["launchType"] = props["launchType"]
    if props.get("capacityProviderStrategies"):
        placement["capacityProviderStrategy"] = [
            {"capacityProvider": p, "base": base, "weight": weight} for p, base, weight in strategy_of_props(props)
        ]
    network = props["networkConfiguration"]
    return {
        "cluster": props["cluster"],
        "serviceName": props["name"],
        "taskDefinition": props["taskDefinition"],
        "desiredCount": int(props["desiredCount"]),
        **placement,
        "platformVersion": props["platformVersion"],
        "deploymentController": {"type": props["deploymentController"]["type"]},
        "deploymentConfiguration": configuration,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": network["subnets"],
                "securityGroups": network["securityGroups"],
                "assignPublicIp": "ENABLED" if network["assignPublicIp"] else "DISABLED",
            }
        },
        "loadBalancers": [{**lb, "containerPort": int(lb["containerPort"])} for lb in props["loadBalancers"]],
        "healthCheckGracePeriodSeconds": int(props["healthCheckGracePeriodSeconds"]),
        "propagateTags": props["propagateTags"],
        "enableECSManagedTags": props["enableEcsManagedTags"],
    }

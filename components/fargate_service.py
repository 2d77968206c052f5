"""FargateService: the runtime the pipeline deploys onto, as two parts and the traffic between them.

- ``LoadBalancer`` (``load_balancer.py``): security group, ALB, blue and green target groups, production and
  test listeners, HTTPS redirect and DNS name, access logs;
- ``EcsService`` (``ecs_service.py``): cluster, log group, execution and task roles, the first task definition,
  the tasks' security group, the service (deployments controlled by CodeDeploy, or by ECS itself);
- between them, here: the container port from the ALB's security group to the tasks', and, with ECS-native
  blue/green, the role ECS shifts the load balancer's traffic with.

Consumers get two bundles: ``endpoints`` (what the alarms and the deployment group address) and ``runtime``
(what the pipeline deploys onto); and ``buckets``, the load balancer's access-log bucket for the S3 access logs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import iam, security_groups
from components.base import Component, StackContext
from components.buckets import BucketRef
from components.deployment_engine import DeploymentEngine, NativeBlueGreen
from components.ecs_service import (
    CODEDEPLOY_OWNED_SERVICE_FIELDS,
    ContainerConfig,
    EcsService,
    EcsServiceArgs,
    NativeRouting,
    TaskRuntime,
)
from components.load_balancer import (
    CODEDEPLOY_OWNED_LISTENER_FIELDS,
    ECS_OWNED_RULE_FIELDS,
    LoadBalancer,
    LoadBalancerArgs,
    LoadBalancerConfig,
    ServiceEndpoints,
)
from components.network import Subnets

# What the deployment engine owns after the first blue/green deployment, per resource kind, as Pulumi property
# names: the program leaves exactly these fields alone (ignoreChanges). README, "Drift contract".
CODEDEPLOY_OWNED: dict[str, tuple[str, ...]] = {
    "service": CODEDEPLOY_OWNED_SERVICE_FIELDS,
    "listener": CODEDEPLOY_OWNED_LISTENER_FIELDS,
}
ECS_OWNED: dict[str, tuple[str, ...]] = {
    "service": CODEDEPLOY_OWNED_SERVICE_FIELDS,
    "listener_rule": ECS_OWNED_RULE_FIELDS,
}
OWNED_BY_ENGINE: dict[DeploymentEngine, dict[str, tuple[str, ...]]] = {"codedeploy": CODEDEPLOY_OWNED, "ecs": ECS_OWNED}


@dataclass(frozen=True)
class FargateServiceArgs:
    context: StackContext
    container: ContainerConfig
    container_name: str
    """The container's name: ``containerName``, or the app's name."""
    load_balancer: LoadBalancerConfig
    subnets: Subnets
    certificate_arn: pulumi.Input[str] | None = None
    """The HTTPS listener's certificate: a ``Certificate``'s validated ``arn`` or the configured
    ``certificateArn``; exactly when ``load_balancer.https``."""
    native: NativeBlueGreen | None = None
    """ECS-native blue/green (the ``ecs`` engine); ``None``: CodeDeploy deploys the service."""


class FargateService(Component):
    endpoints: ServiceEndpoints
    runtime: TaskRuntime
    buckets: tuple[BucketRef, ...]
    """The load balancer's access-log bucket, if any (for the stack's S3 access logs)."""

    def __init__(self, name: str, args: FargateServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(name, opts)
        c = args.container
        # Both parts keep the component's name: their children were this component's before it was split, and
        # keep their names (and, through an alias, their URNs).
        lb = LoadBalancer(
            name,
            LoadBalancerArgs(
                context=args.context,
                config=args.load_balancer,
                vpc_id=args.subnets.vpc_id,
                public_subnet_ids=args.subnets.public_subnet_ids,
                target_port=c.container_port,
                health_check_path=c.health_check_path,
                certificate_arn=args.certificate_arn,
                traffic_control="rules" if args.native else "listeners",
            ),
            pulumi.ResourceOptions(parent=self),
            children_formerly_of=self,
        )
        routing, ready = self._native_routing(name, args, lb)
        ecs = EcsService(
            name,
            EcsServiceArgs(
                context=args.context,
                container=c,
                container_name=args.container_name,
                vpc_id=args.subnets.vpc_id,
                task_subnet_ids=args.subnets.task_subnet_ids,
                assign_public_ip=args.subnets.assign_public_ip,
                target_group_arn=lb.endpoints.blue.arn,
                ready=ready,
                native=args.native,
                routing=routing,
            ),
            pulumi.ResourceOptions(parent=self),
            children_formerly_of=self,
        )
        security_groups.between(
            self,
            egress_name=f"{name}-alb-to-tasks",
            ingress_name=f"{name}-tasks-from-alb",
            source=lb.security_group_id,
            target=ecs.security_group_id,
            port=c.container_port,
            descriptions=("to the tasks", "from the ALB"),
        )
        self.endpoints = lb.endpoints
        self.runtime = ecs.runtime
        self.buckets = lb.buckets
        self.register_outputs(
            {
                "url": self.endpoints.url,
                "test_url": self.endpoints.test_url,
                "cluster_name": self.runtime.cluster_name,
                "service_name": self.runtime.service_name,
            }
        )

    def _native_routing(
        self, name: str, args: FargateServiceArgs, lb: LoadBalancer
    ) -> tuple[NativeRouting | None, list[pulumi.Resource]]:
        """With ECS-native blue/green: the rules ECS reweights and the role it does that with, scoped to this
        load balancer (granted here, where the two parts meet); what the service waits for."""
        if args.native is None:
            return None, list(lb.listeners)
        # The trust policy the ECS guide documents for this role, which has no condition.
        # https://docs.aws.amazon.com/AmazonECS/latest/developerguide/AmazonECSInfrastructureRolePolicyForLoadBalancers.html
        role = iam.service_role(
            self,
            f"{name}-ecs-infrastructure",
            physical_name=f"{args.context.name_prefix}-ecs-infrastructure",
            service="ecs.amazonaws.com",
            account_id=None,
            statements=lb.traffic_shifting_statements(),
            policy_name="traffic-shifting",
        )
        endpoints = lb.endpoints
        if endpoints.prod_rule_arn is None or endpoints.test_rule_arn is None:
            raise ValueError(f"load balancer {name!r} has no listener rules for ECS-native blue/green")
        routing = NativeRouting(
            alternate_target_group_arn=endpoints.green.arn,
            production_rule_arn=endpoints.prod_rule_arn,
            test_rule_arn=endpoints.test_rule_arn,
            role_arn=role.role.arn,
        )
        return routing, [*lb.listeners, *lb.rules, *role.ready]

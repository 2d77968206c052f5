"""FargateService: the runtime the pipeline deploys onto, as two parts and the traffic between them.

- ``LoadBalancer`` (``load_balancer.py``): security group, ALB, blue and green target groups, production and
  test listeners, HTTPS redirect and DNS name, access logs;
- ``EcsService`` (``ecs_service.py``): cluster, log group, execution and task roles, the first task definition,
  the tasks' security group, the service (deployments controlled by CodeDeploy);
- between them, here: the container port from the ALB's security group to the tasks', and nothing else.

Consumers get two bundles: ``endpoints`` (what the alarms and the deployment group address) and ``runtime``
(what the pipeline deploys onto).
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from components import security_groups
from components.base import Component, StackContext
from components.ecs_service import (
    CODEDEPLOY_OWNED_SERVICE_FIELDS,
    ContainerConfig,
    EcsService,
    EcsServiceArgs,
    TaskRuntime,
)
from components.load_balancer import (
    CODEDEPLOY_OWNED_LISTENER_FIELDS,
    LoadBalancer,
    LoadBalancerArgs,
    LoadBalancerConfig,
    ServiceEndpoints,
)
from components.network import Subnets

# What CodeDeploy owns after the first blue/green deployment, per resource kind, as Pulumi property names: the
# program leaves exactly these fields alone (ignoreChanges). README, "Drift contract".
CODEDEPLOY_OWNED: dict[str, tuple[str, ...]] = {
    "service": CODEDEPLOY_OWNED_SERVICE_FIELDS,
    "listener": CODEDEPLOY_OWNED_LISTENER_FIELDS,
}


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


class FargateService(Component):
    endpoints: ServiceEndpoints
    runtime: TaskRuntime

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
            ),
            pulumi.ResourceOptions(parent=self),
            children_formerly_of=self,
        )
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
                ready=lb.listeners,
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
        self.register_outputs(
            {
                "url": self.endpoints.url,
                "test_url": self.endpoints.test_url,
                "cluster_name": self.runtime.cluster_name,
                "service_name": self.runtime.service_name,
            }
        )

"""GitLab -> S3 -> CodePipeline -> CodeBuild/ECR -> CodeDeploy blue/green -> ECS Fargate, per stack.

This file only wires: it loads the validated stack config, builds the components in the order the
pipeline flows, and exports what an operator needs (the site URL first).
"""

import pulumi
import pulumi_aws as aws

from components.config import load_stack_config
from components.fargate_service import FargateService, FargateServiceArgs
from components.network import Network, NetworkArgs

cfg = load_stack_config()

aws_provider = aws.Provider(
    "aws",
    region=cfg.region,
    default_tags=aws.ProviderDefaultTagsArgs(
        tags={**cfg.tags, "app": cfg.app_name, "stack": cfg.stack, "managed-by": "pulumi"}
    ),
)
aws_only = pulumi.ResourceOptions(providers={"aws": aws_provider})

network = Network("network", NetworkArgs(config=cfg.network, name_prefix=cfg.name_prefix), aws_only)

service = FargateService(
    "service",
    FargateServiceArgs(
        name_prefix=cfg.name_prefix,
        region=cfg.region,
        container=cfg.container,
        alb=cfg.alb,
        log_retention_days=cfg.log_retention_days,
        vpc_id=network.vpc_id,
        public_subnet_ids=network.public_subnet_ids,
        task_subnet_ids=network.task_subnet_ids,
        assign_public_ip=network.assign_public_ip,
    ),
    aws_only,
)

pulumi.export("url", service.url)
pulumi.export("testUrl", service.test_url)
pulumi.export("clusterName", service.cluster_name)
pulumi.export("serviceName", service.service_name)
pulumi.export("logGroupName", service.log_group_name)
pulumi.export("vpcId", network.vpc_id)

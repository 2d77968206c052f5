"""GitLab -> S3 -> CodePipeline -> CodeBuild/ECR -> CodeDeploy blue/green -> ECS Fargate, per stack.

This file only wires: it loads the validated stack config, builds the components in the order the pipeline
flows, makes the grants between them, and exports what an operator needs (the site URL first).
"""

import pulumi
import pulumi_aws as aws

from components.build_stage import BuildStage, BuildStageArgs
from components.certificate import site_certificate_arn
from components.commit_status import CommitStatus, CommitStatusArgs
from components.config import load_stack_config
from components.deploy_stage import DeployStage, DeployStageArgs
from components.fargate_service import FargateService, FargateServiceArgs
from components.gitlab_project import GitLabProject, GitLabProjectArgs, gitlab_provider
from components.network import Network, NetworkArgs
from components.notifications import Notifications, NotificationsArgs
from components.s3_access_logs import S3AccessLogs, S3AccessLogsArgs
from components.service_alarms import ServiceAlarms, ServiceAlarmsArgs, alarm_names
from components.source_bucket import SourceBucket, SourceBucketArgs
from components.upload_identity import UploadIdentity, UploadIdentityArgs

cfg = load_stack_config()
stack = cfg.context

aws_provider = aws.Provider(
    "aws",
    region=cfg.region,
    default_tags=aws.ProviderDefaultTagsArgs(
        tags={**cfg.settings.tags, "app": cfg.settings.app_name, "stack": cfg.stack, "managed-by": "pulumi"}
    ),
)
aws_only = pulumi.ResourceOptions(providers={"aws": aws_provider})

# --- Runtime: the network, the certificate (with HTTPS), the service behind its load balancer ---
network = Network("network", NetworkArgs(cfg.network, stack, public_ports=cfg.load_balancer.listener_ports), aws_only)
service = FargateService(
    "service",
    FargateServiceArgs(
        context=stack,
        container=cfg.container,
        container_name=cfg.container_name,
        load_balancer=cfg.load_balancer,
        subnets=network.subnets,
        certificate_arn=site_certificate_arn("certificate", cfg.load_balancer, aws_only),
        # With deploymentEngine `ecs` the service deploys itself (ECS-native blue/green) and names its alarms.
        native=cfg.deploy.native_blue_green(alarm_names(stack.name_prefix, cfg.alarms)),
    ),
    aws_only,
)

# --- Operations: one notification topic; alarms on both target groups that roll a deployment back ---
# (No topic when nobody reads it: the alarms still roll back, GitLab still shows each deployment's result.)
topic = (
    Notifications(
        "notifications", NotificationsArgs(stack.name_prefix, stack.region, cfg.notifications), aws_only
    ).topic
    if cfg.notifications.wants_topic
    else None
)
alarms = ServiceAlarms(
    "alarms",
    ServiceAlarmsArgs(stack.name_prefix, cfg.alarms, service.endpoints, topic.topic_arn if topic else None),
    aws_only,
)

# --- Delivery pipeline: upload -> Source -> Build -> (Approve) -> Deploy ---
source = SourceBucket("source", SourceBucketArgs(stack, cfg.source), aws_only)
build = BuildStage(
    "build",
    BuildStageArgs(
        stack,
        cfg.build,
        service.runtime.taskdef_values,
        service.runtime.cpu_architecture,
        service.runtime.capacity_provider_strategy,
    ),
    aws_only,
)
deploy = DeployStage(
    "deploy",
    DeployStageArgs(
        context=stack,
        config=cfg.deploy,
        source=source.source,
        projects=build.projects,
        endpoints=service.endpoints,
        runtime=service.runtime,
        alarm_names=alarms.alarm_names,
        topic=topic,
    ),
    aws_only,
)
# Who may use whose resources: granted by the owner of the resource, here where the parts meet.
build.grant_pull(service.runtime.execution_role)
deploy.artifacts.grant_read_write(build.projects.build_role, purpose="build")
deploy.artifacts.grant_read(build.projects.release_role, purpose="release")

# --- GitLab side: the job's AWS identity, and on the application project its variables, key and job file ---
upload_identity = UploadIdentity(
    "upload-identity",
    UploadIdentityArgs(
        name_prefix=stack.name_prefix,
        config=cfg.upload,
        source=source.source,
        gitlab_url=cfg.gitlab.gitlab_url,
        project=cfg.gitlab.gitlab_project,
        default_branch=cfg.gitlab.gitlab_default_branch,
    ),
    aws_only,
)
gitlab_api = gitlab_provider("gitlab", cfg.gitlab)
gitlab_project = GitLabProject(
    "gitlab-project",
    GitLabProjectArgs(
        cfg.stack, cfg.region, cfg.gitlab, source.source, upload_identity.credentials, service.endpoints.url
    ),
    pulumi.ResourceOptions(providers={"gitlab": gitlab_api}),
)
# --- Feedback: every pipeline execution reported on the GitLab commit it deploys ---
if cfg.gitlab.commit_status:
    CommitStatus(
        "commit-status",
        CommitStatusArgs(stack, cfg.stack, cfg.gitlab, deploy.pipeline, service.endpoints.url, topic),
        pulumi.ResourceOptions(providers={"aws": aws_provider, "gitlab": gitlab_api}),
    )
# --- Audit: S3 server access logs of every bucket above, in a bucket of their own (FSBP S3.9) ---
# Last: its one bucket policy admits each bucket's log delivery by that bucket's ARN, so every bucket exists first.
if cfg.access_logs.s3_access_logs:
    S3AccessLogs(
        "s3-access-logs",
        S3AccessLogsArgs(stack, sources=(*service.buckets, *source.buckets, *deploy.artifacts.buckets)),
        aws_only,
    )

pulumi.export("url", service.endpoints.url)
pulumi.export("testUrl", service.endpoints.test_url)
pulumi.export("albDnsName", service.endpoints.alb_dns_name)
pulumi.export("clusterName", service.runtime.cluster_name)
pulumi.export("serviceName", service.runtime.service_name)
pulumi.export("logGroupName", service.runtime.log_group_name)
pulumi.export("vpcId", network.subnets.vpc_id)
pulumi.export("pipelineName", deploy.pipeline.name)
pulumi.export("pipelineUrl", deploy.pipeline.url)
pulumi.export("notificationTopicArn", topic.topic_arn if topic else None)
pulumi.export("ecrRepositoryUrl", build.projects.repository_url)
pulumi.export("sourceBucket", source.source.bucket_name)
pulumi.export("sourceObjectKey", source.source.key)
pulumi.export("gitlabCiYml", gitlab_project.ci_yml)
pulumi.export("gitlabCiPath", gitlab_project.ci_path)
pulumi.export("gitlabVariables", gitlab_project.variable_keys)
pulumi.export(
    "uploadIdentity",
    {
        "mode": upload_identity.credentials.mode,
        "principalArn": upload_identity.credentials.principal_arn,
        "oidcProviderArn": upload_identity.credentials.oidc_provider_arn,
    },
)

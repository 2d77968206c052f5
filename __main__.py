"""GitLab -> S3 -> CodePipeline -> CodeBuild/ECR -> CodeDeploy blue/green -> ECS Fargate, per stack.

This file only wires: it loads the validated stack config, builds the components in the order the
pipeline flows, and exports what an operator needs (the site URL first).
"""

import pulumi
import pulumi_aws as aws

from components.build_stage import BuildStage, BuildStageArgs
from components.certificate import Certificate, CertificateArgs
from components.config import load_stack_config
from components.deploy_stage import DeployStage, DeployStageArgs
from components.fargate_service import FargateService, FargateServiceArgs
from components.gitlab_project import GitLabProject, GitLabProjectArgs, gitlab_provider
from components.network import Network, NetworkArgs
from components.notifications import Notifications, NotificationsArgs
from components.service_alarms import ServiceAlarms, ServiceAlarmsArgs
from components.source_bucket import SourceBucket, SourceBucketArgs
from components.upload_identity import UploadIdentity, UploadIdentityArgs

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

# HTTPS: a certificate validated through the stack's Route 53 zone, or the one given by ARN, or none (HTTP).
certificate_arn = (
    Certificate(
        "certificate",
        CertificateArgs(domain_name=cfg.alb.domain_name, hosted_zone_id=cfg.alb.hosted_zone_id),
        aws_only,
    ).arn
    if cfg.alb.creates_certificate and cfg.alb.domain_name and cfg.alb.hosted_zone_id
    else cfg.alb.certificate_arn
)

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
        certificate_arn=certificate_arn,
        force_destroy=cfg.force_destroy,
    ),
    aws_only,
)

# --- Operations: one notification topic; alarms on both target groups that roll a deployment back ---
notifications = Notifications(
    "notifications",
    NotificationsArgs(name_prefix=cfg.name_prefix, region=cfg.region, emails=cfg.notification_emails),
    aws_only,
)
alarms = ServiceAlarms(
    "alarms",
    ServiceAlarmsArgs(
        name_prefix=cfg.name_prefix,
        alarms=cfg.alarms,
        load_balancer_arn_suffix=service.load_balancer_arn_suffix,
        blue_target_group_arn_suffix=service.blue_target_group_arn_suffix,
        green_target_group_arn_suffix=service.green_target_group_arn_suffix,
        topic_arn=notifications.topic_arn,
    ),
    aws_only,
)

# --- Delivery pipeline: upload -> Source -> Build -> (Approve) -> Deploy ---
source = SourceBucket(
    "source",
    SourceBucketArgs(
        name_prefix=cfg.name_prefix,
        object_key=cfg.pipeline.source_object_key,
        trigger_mode=cfg.pipeline.trigger_mode,
        log_retention_days=cfg.log_retention_days,
        force_destroy=cfg.force_destroy,
    ),
    aws_only,
)

build = BuildStage(
    "build",
    BuildStageArgs(
        name_prefix=cfg.name_prefix,
        pipeline=cfg.pipeline,
        log_retention_days=cfg.log_retention_days,
        taskdef_values=service.taskdef_values,
        execution_role_name=service.execution_role_name,
        force_destroy=cfg.force_destroy,
    ),
    aws_only,
)

deploy = DeployStage(
    "deploy",
    DeployStageArgs(
        name_prefix=cfg.name_prefix,
        region=cfg.region,
        pipeline=cfg.pipeline,
        source_bucket_name=source.bucket_name,
        source_bucket_arn=source.bucket_arn,
        source_object_key=source.object_key,
        source_event_pattern=source.event_pattern,
        project_name=build.project_name,
        project_arn=build.project_arn,
        build_role_name=build.build_role_name,
        release_project_name=build.release_project_name,
        release_project_arn=build.release_project_arn,
        release_role_name=build.release_role_name,
        cluster_name=service.cluster_name,
        service_name=service.service_name,
        blue_target_group_name=service.blue_target_group_name,
        green_target_group_name=service.green_target_group_name,
        prod_listener_arn=service.prod_listener_arn,
        test_listener_arn=service.test_listener_arn,
        family=service.family,
        task_role_arn=service.task_role_arn,
        execution_role_arn=service.execution_role_arn,
        alarm_names=alarms.alarm_names,
        notification_topic_arn=notifications.topic_arn,
        notification_key_arn=notifications.key_arn,
        force_destroy=cfg.force_destroy,
    ),
    aws_only,
)

# --- GitLab side: the job's AWS identity, and on the application project its variables, key and CI file ---
upload_identity = UploadIdentity(
    "upload-identity",
    UploadIdentityArgs(
        name_prefix=cfg.name_prefix,
        mode=cfg.gitlab.upload_identity,
        bucket_arn=source.bucket_arn,
        object_key=source.object_key,
        gitlab_url=cfg.gitlab.url,
        project=cfg.gitlab.project,
        default_branch=cfg.gitlab.default_branch,
        oidc_provider_arn=cfg.gitlab.oidc_provider_arn,
    ),
    aws_only,
)

gitlab_api = gitlab_provider("gitlab", cfg.gitlab)
gitlab_project = GitLabProject(
    "gitlab-project",
    GitLabProjectArgs(
        project=cfg.gitlab.project,
        stack=cfg.stack,
        default_branch=cfg.gitlab.default_branch,
        gitlab_url=cfg.gitlab.url,
        region=cfg.region,
        bucket_name=source.bucket_name,
        object_key=source.object_key,
        upload_identity=cfg.gitlab.upload_identity,
        access_key_id=upload_identity.access_key_id,
        secret_access_key=upload_identity.secret_access_key,
        role_arn=upload_identity.role_arn,
        commit_ci_file=cfg.gitlab.commit_ci_file,
    ),
    pulumi.ResourceOptions(providers={"gitlab": gitlab_api}),
)

pulumi.export("url", service.url)
pulumi.export("testUrl", service.test_url)
pulumi.export("albDnsName", service.alb_dns_name)
pulumi.export("clusterName", service.cluster_name)
pulumi.export("serviceName", service.service_name)
pulumi.export("logGroupName", service.log_group_name)
pulumi.export("vpcId", network.vpc_id)
pulumi.export("pipelineName", deploy.pipeline_name)
pulumi.export("pipelineUrl", deploy.pipeline_url)
pulumi.export("notificationTopicArn", notifications.topic_arn)
pulumi.export("ecrRepositoryUrl", build.repository_url)
pulumi.export("sourceBucket", source.bucket_name)
pulumi.export("sourceObjectKey", source.object_key)
pulumi.export("buildspecYml", build.buildspec)
pulumi.export("taskdefJson", build.taskdef_json)
pulumi.export("appspecYaml", build.appspec_yaml)
pulumi.export("gitlabCiYml", gitlab_project.ci_yml)
pulumi.export("gitlabCiPath", gitlab_project.ci_path)
pulumi.export("gitlabVariables", gitlab_project.variable_keys)
pulumi.export(
    "uploadIdentity",
    {
        "mode": upload_identity.mode,
        "principalArn": upload_identity.principal_arn,
        "oidcProviderArn": upload_identity.oidc_provider_arn,
    },
)

#!/usr/bin/env bash
# Deploys the build's image to the ECS service with ECS-native blue/green and waits for the outcome: the
# deploymentEngine "ecs" counterpart of CodePipeline's CodeDeployToECS action. Run by the pipeline's deploy
# project (files/ecs-deploy-buildspec.yml) in the Deploy stage, with the build's artifact:
#
#   ecs-deploy.sh imageDetail.json taskdef.json
#
# 1. registers taskdef.json as a new revision of the service's family, with the image imageDetail.json names in
#    place of the image placeholder (what CodeDeployToECS does with the same two files);
# 2. updates the service to that revision: ECS starts a service deployment with the service's strategy
#    (BLUE_GREEN, CANARY or LINEAR), bake time and alarms;
# 3. waits for that deployment to end. SUCCESSFUL exits 0. Stopped, rolled back or failed exits 1, so the
#    pipeline execution fails (and the stack's notification topic hears of it) and MarkLive never runs.
#
# CLUSTER, SERVICE and IMAGE_PLACEHOLDER come from the project (components/ecs_deployment.py). The build's
# timeout bounds the wait: it is the longest the deployment can take (shift, bake time and some room).
set -euo pipefail

usage="usage: ecs-deploy.sh imageDetail.json taskdef.json"
detail="${1:?${usage}}"
taskdef="${2:?${usage}}"
cluster="${CLUSTER:?}"
service="${SERVICE:?}"
placeholder="${IMAGE_PLACEHOLDER:?}"
poll_seconds="${POLL_SECONDS:-15}"

image="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ImageURI"])' "${detail}")"
if [ -z "${image}" ]; then
  echo "ERROR: ${detail} names no image" >&2
  exit 1
fi

# taskdef.json with the image in place of the placeholder; refuses a file that has no placeholder to fill.
rendered="${CODEBUILD_TMPDIR:-/tmp}/taskdef.rendered.json"
python3 - "${taskdef}" "${placeholder}" "${image}" > "${rendered}" <<'PY'
import json
import sys

path, placeholder, image = sys.argv[1:4]
document = json.load(open(path))
containers = [c for c in document["containerDefinitions"] if c.get("image") == placeholder]
if not containers:
    sys.exit(f"ERROR: {path} has no container with the image {placeholder}")
for container in containers:
    container["image"] = image
print(json.dumps(document))
PY

revision="$(aws ecs register-task-definition --cli-input-json "file://${rendered}" \
  --query taskDefinition.taskDefinitionArn --output text)"
echo "Registered ${revision} (${image})"

deployment="$(aws ecs update-service --cluster "${cluster}" --service "${service}" \
  --task-definition "${revision}" --query service.currentServiceDeployment --output text)"
if [ -z "${deployment}" ] || [ "${deployment}" = "None" ]; then
  echo "ERROR: ECS started no service deployment for ${service}" >&2
  exit 1
fi
echo "Deploying ${revision} to ${service}: ${deployment}"

# The service deployment's states (ECS API reference, ServiceDeployment.status).
last=""
while true; do
  if ! answer="$(aws ecs describe-service-deployments --service-deployment-arns "${deployment}" \
    --query 'serviceDeployments[0].[status, statusReason]' --output text)"; then
    echo "ERROR: cannot read the state of ${deployment}; the deployment goes on without this step" >&2
    exit 1
  fi
  read -r status reason <<< "${answer}"
  [ "${reason}" = "None" ] && reason=""
  if [ "${status}" != "${last}" ]; then
    echo "$(date -u +%H:%M:%S) ${status}${reason:+: ${reason}}"
    last="${status}"
  fi
  case "${status}" in
    SUCCESSFUL)
      exit 0
      ;;
    PENDING | IN_PROGRESS | STOP_REQUESTED | ROLLBACK_REQUESTED | ROLLBACK_IN_PROGRESS)
      sleep "${poll_seconds}"
      ;;
    STOPPED | ROLLBACK_SUCCESSFUL | ROLLBACK_FAILED)
      echo "ERROR: the deployment of ${revision} ended ${status}: production keeps, or returns to, the previous version" >&2
      exit 1
      ;;
    *)
      echo "ERROR: unexpected deployment status ${status:-(none)}" >&2
      exit 1
      ;;
  esac
done

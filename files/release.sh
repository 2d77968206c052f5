#!/usr/bin/env bash
# Marks the image a deployment takes into production, so that ECR's lifecycle policy never expires an image a
# service runs or may roll back to. Run by the pipeline's release project (files/release-buildspec.yml) around
# the deployment, with the build's imageDetail.json:
#
#   RELEASE_STEP=deploying release.sh imageDetail.json   before the deployment: tag the image $DEPLOYING_TAG
#   RELEASE_STEP=live      release.sh imageDetail.json   after it succeeded: $ROLLBACK_TAG := the old
#                                                         $LIVE_TAG, $LIVE_TAG := this image
#
# The three tags (deploying, rollback, live) come from the buildspec, which takes them from
# components/build_stage.py. Each names one image at a time, and the lifecycle policy there never
# expires an image that carries one, however many images are pushed without being deployed. A tag is moved by
# putting the image's manifest again under that tag (PutImage), which needs no pull or push of layers.
set -euo pipefail

detail="${1:?usage: release.sh imageDetail.json}"
step="${RELEASE_STEP:?RELEASE_STEP must be deploying or live}"
live_tag="${LIVE_TAG:?}"
rollback_tag="${ROLLBACK_TAG:?}"
deploying_tag="${DEPLOYING_TAG:?}"

uri="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ImageURI"])' "${detail}")"
path="${uri#*/}"
repository="${path%:*}"
tag="${path##*:}"
if [ -z "${repository}" ] || [ "${repository}" = "${path}" ] || [ -z "${tag}" ]; then
  echo "ERROR: ${detail} names no tagged ECR image (ImageURI ${uri})" >&2
  exit 1
fi

# image_field TAG FIELD: a field of the image TAG names ("None" when no image has that tag).
image_field() {
  aws ecr batch-get-image --repository-name "${repository}" --image-ids "imageTag=$1" \
    --accepted-media-types \
    application/vnd.docker.distribution.manifest.v2+json \
    application/vnd.oci.image.manifest.v1+json \
    application/vnd.docker.distribution.manifest.list.v2+json \
    application/vnd.oci.image.index.v1+json \
    --query "images[0].$2" --output text
}

# retag FROM TO: the image tagged FROM is tagged TO as well (TO moves off whatever image had it).
retag() {
  local manifest media output
  manifest="$(image_field "$1" imageManifest)"
  media="$(image_field "$1" imageManifestMediaType)"
  if [ "${manifest}" = "None" ]; then
    echo "ERROR: ${repository}:$1 no longer exists in ECR." >&2
    echo "It was built before more than ecrKeepImages newer images were pushed (a deployment that waited long" >&2
    echo "for approval?) and expired. Nothing was deployed; push again (or re-run the source) to rebuild it." >&2
    exit 1
  fi
  if output="$(aws ecr put-image --repository-name "${repository}" --image-tag "$2" \
    --image-manifest "${manifest}" --image-manifest-media-type "${media}" 2>&1)"; then
    echo "${repository}:$2 -> the image of :$1"
  elif [[ "${output}" == *ImageAlreadyExistsException* ]]; then
    echo "${repository}:$2 already is the image of :$1"
  else
    echo "${output}" >&2
    exit 1
  fi
}

case "${step}" in
  deploying)
    retag "${tag}" "${deploying_tag}"
    ;;
  live)
    live="$(image_field "${live_tag}" imageId.imageDigest)"
    new="$(image_field "${tag}" imageId.imageDigest)"
    if [ "${live}" != "None" ] && [ "${live}" != "${new}" ]; then
      retag "${live_tag}" "${rollback_tag}"
    fi
    retag "${tag}" "${live_tag}"
    ;;
  *)
    echo "ERROR: RELEASE_STEP is '${step}'; it must be deploying or live" >&2
    exit 1
    ;;
esac

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
# putting the image's manifest again under that tag (PutImage), which needs no pull or push of layers. They are
# the only tags this script writes, and the repository exempts exactly them (and `latest`) from its tag
# immutability: every other tag names one image for good.
#
# imageDetail.json names the image by digest (<registry>/<repository>@sha256:...), as the build writes it, or by
# tag (<registry>/<repository>:<tag>).
set -euo pipefail

detail="${1:?usage: release.sh imageDetail.json}"
step="${RELEASE_STEP:?RELEASE_STEP must be deploying or live}"
live_tag="${LIVE_TAG:?}"
rollback_tag="${ROLLBACK_TAG:?}"
deploying_tag="${DEPLOYING_TAG:?}"

uri="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ImageURI"])' "${detail}")"
path="${uri#*/}"
if [[ "${path}" == *@* ]]; then
  repository="${path%%@*}"
  image="imageDigest=${path#*@}"
else
  repository="${path%:*}"
  image="imageTag=${path##*:}"
fi
if [ -z "${repository}" ] || [ "${repository}" = "${path}" ] || [ -z "${image#*=}" ]; then
  echo "ERROR: ${detail} names no ECR image by tag or digest (ImageURI ${uri})" >&2
  exit 1
fi

# image_field IMAGE_ID FIELD: a field of the image IMAGE_ID (imageTag=... or imageDigest=...) names ("None" when
# there is no such image).
image_field() {
  aws ecr batch-get-image --repository-name "${repository}" --image-ids "$1" \
    --accepted-media-types \
    application/vnd.docker.distribution.manifest.v2+json \
    application/vnd.oci.image.manifest.v1+json \
    application/vnd.docker.distribution.manifest.list.v2+json \
    application/vnd.oci.image.index.v1+json \
    --query "images[0].$2" --output text
}

# name IMAGE_ID: the image as people write it, <repository>:<tag> or <repository>@<digest>.
name() {
  case "$1" in
    imageDigest=*) echo "${repository}@${1#imageDigest=}" ;;
    *) echo "${repository}:${1#imageTag=}" ;;
  esac
}

# retag IMAGE_ID TAG: the image IMAGE_ID names is tagged TAG as well (TAG moves off whatever image had it).
retag() {
  local manifest media output
  manifest="$(image_field "$1" imageManifest)"
  media="$(image_field "$1" imageManifestMediaType)"
  if [ "${manifest}" = "None" ]; then
    echo "ERROR: $(name "$1") no longer exists in ECR." >&2
    echo "It was built before more than ecrKeepImages newer images were pushed (a deployment that waited long" >&2
    echo "for approval?) and expired. Nothing was deployed; push again (or re-run the source) to rebuild it." >&2
    exit 1
  fi
  if output="$(aws ecr put-image --repository-name "${repository}" --image-tag "$2" \
    --image-manifest "${manifest}" --image-manifest-media-type "${media}" 2>&1)"; then
    echo "${repository}:$2 -> $(name "$1")"
  elif [[ "${output}" == *ImageAlreadyExistsException* ]]; then
    echo "${repository}:$2 already is $(name "$1")"
  else
    echo "${output}" >&2
    exit 1
  fi
}

case "${step}" in
  deploying)
    retag "${image}" "${deploying_tag}"
    ;;
  live)
    live="$(image_field "imageTag=${live_tag}" imageId.imageDigest)"
    new="$(image_field "${image}" imageId.imageDigest)"
    if [ "${live}" != "None" ] && [ "${live}" != "${new}" ]; then
      retag "imageTag=${live_tag}" "${rollback_tag}"
    fi
    retag "${image}" "${live_tag}"
    ;;
  *)
    echo "ERROR: RELEASE_STEP is '${step}'; it must be deploying or live" >&2
    exit 1
    ;;
esac

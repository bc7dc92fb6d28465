#!/usr/bin/env bash
# `make kind-up`: a local Kubernetes cluster running Trainyard as in production: the chart,
# the platform and ultralytics trainer images built here, and small dependencies
# (dependencies.yaml). Needs docker, kind, kubectl and helm on PATH. Idempotent: run it again
# after a code change to rebuild, reload and upgrade.
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER=trainyard
NAMESPACE=trainyard
TAG=dev

for tool in docker kind kubectl helm; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    echo "make kind-up needs '$tool', which is not on PATH (see docs/operations.md, 'Local kind cluster')." >&2
    exit 2
  fi
done

if ! kind get clusters | grep -qx "$CLUSTER"; then
  kind create cluster --name "$CLUSTER" --config kind-config.yaml
fi
kubectl config use-context "kind-$CLUSTER" >/dev/null

docker build -f platform/Dockerfile -t "trainyard:$TAG" .
docker build -f trainers/ultralytics/Dockerfile -t "trainyard-trainer-ultralytics:$TAG" trainers
kind load docker-image --name "$CLUSTER" "trainyard:$TAG" "trainyard-trainer-ultralytics:$TAG"

kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" apply -f charts/kind/dependencies.yaml
# The chart references its secrets; on kind they hold the development values above.
kubectl -n "$NAMESPACE" create secret generic trainyard-database \
  --from-literal=url=postgresql+asyncpg://trainyard:trainyard@postgres:5432/trainyard \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" create secret generic trainyard-tokens \
  --from-literal=internal-token="kind-internal-$(hostname)-token-0123456789" \
  --from-literal=callback-secret="kind-callback-$(hostname)-secret-0123456789" \
  --from-literal=session-secret="kind-session-$(hostname)-secret-0123456789" \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" create secret generic trainyard-s3 \
  --from-literal=access-key-id=trainyard --from-literal=secret-access-key=trainyard-dev-secret \
  --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NAMESPACE" wait --for=condition=available --timeout=300s \
  deployment/postgres deployment/redis deployment/temporal deployment/minio
kubectl -n "$NAMESPACE" wait --for=condition=complete --timeout=300s job/minio-bucket

helm upgrade --install trainyard charts/trainyard -n "$NAMESPACE" -f charts/kind/values.yaml \
  --set image.tag="$TAG" --wait --timeout 10m
# Rebuilt images keep their tag: restart so the pods run the new ones.
kubectl -n "$NAMESPACE" rollout restart deployment -l app.kubernetes.io/instance=trainyard
kubectl -n "$NAMESPACE" rollout status deployment -l app.kubernetes.io/instance=trainyard --timeout=300s

cat <<DONE
Trainyard runs on kind (namespace $NAMESPACE), API at http://localhost:8080
  export TRAINYARD_API_URL=http://localhost:8080
  uv run trainyard datasets make-shapes --out /tmp/shapes --no-register
  uv run trainyard datasets upload /tmp/shapes --name shapes
  uv run trainyard train yolo11n.yaml --data shapes --epochs 3 --imgsz 128 --watch
DONE

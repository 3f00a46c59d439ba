#!/bin/sh
# Entrypoint of the galclust image: `docker run IMAGE serve ...` runs
# `galclust serve ...`. Dask and Prefect commands pass through unchanged,
# because the Dask Kubernetes operator and Dask Gateway start workers and
# schedulers by giving the container arguments such as `dask-worker ...`,
# and compose/prefect workers run `dask ...` or `prefect ...`.
set -e
case "$1" in
    "")
        exec galclust --help ;;
    dask|dask-worker|dask-scheduler|prefect|python|python3|sh|bash|galclust)
        exec "$@" ;;
    *)
        exec galclust "$@" ;;
esac

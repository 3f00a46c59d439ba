"""Build galclust's nightly deployment in Python, then serve it or deploy it to a work pool.

The same deployment as ``deploy/prefect.yaml`` (name ``galclust-nightly``, cron
``0 3 * * *`` UTC, work pool ``galclust-pool``), but with a module entrypoint
(``flows.nightly.nightly_flow``), so any environment where galclust is
installed can run it without a copy of the repository, and with the Dask
cluster given as an address or a cluster spec file (``deploy/clusters/``).

Examples
--------
Print the deployment (no Prefect server needed)::

    python deploy/deploy.py show s3://bucket/survey.toml --store s3://bucket/field.zarr

Serve it from this machine (as ``galclust serve`` does)::

    python deploy/deploy.py serve s3://bucket/survey.toml --store s3://bucket/field.zarr \\
        --cluster-spec deploy/clusters/kubernetes.yaml

Deploy it to a work pool of a Prefect server (``PREFECT_API_URL`` set), after
creating the pool once with ``prefect work-pool create galclust-pool --type process``,
and start a worker where the runs should execute with
``prefect worker start --pool galclust-pool``::

    python deploy/deploy.py deploy s3://bucket/survey.toml --store s3://bucket/field.zarr \\
        --scheduler tcp://dask-scheduler:8786 --work-pool galclust-pool
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from flows.serve import (
    WORK_POOL,
    add_deployment_arguments,
    deployment_from_args,
    describe_deployment,
    run_service,
)
from galclust.errors import GalclustError

WORK_POOL_COMMAND = f"prefect work-pool create {WORK_POOL} --type process"


def make_deployment(args: argparse.Namespace) -> Any:
    """The nightly ``RunnerDeployment`` described by the parsed arguments.

    Parameters
    ----------
    args : argparse.Namespace
        From :func:`build_parser`.

    Returns
    -------
    prefect.deployments.runner.RunnerDeployment
    """
    return deployment_from_args(args, validate=not args.no_validate,
                                work_pool=args.work_pool if args.action == "deploy" else None)


def deploy_to_pool(deployment: Any, *, image: str | None = None) -> list[Any]:
    """Register ``deployment`` on its work pool; returns the deployment ids.

    Nothing is built or pushed: the pool's workers must have galclust
    installed (the image of ``deploy/Dockerfile``, or ``image`` for a
    Docker/Kubernetes pool).
    """
    from prefect import deploy

    return deploy(deployment, work_pool_name=deployment.work_pool_name, image=image,
                  build=False, push=False, print_next_steps_message=False,
                  ignore_warnings=True)  # a process pool is intended here


def build_parser() -> argparse.ArgumentParser:
    """Command-line arguments of this script."""
    parser = argparse.ArgumentParser(
        prog="deploy.py", description=__doc__.split("\n\n")[0],
        epilog=f"Create the work pool once with: {WORK_POOL_COMMAND}; "
               f"then run: prefect worker start --pool {WORK_POOL}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("show", "serve", "deploy"),
                        help="show: print the deployment; serve: run it from this process; "
                        "deploy: register it on a work pool")
    add_deployment_arguments(parser)  # the same flags as `galclust serve`
    parser.add_argument("--work-pool", default=WORK_POOL, help="default: %(default)s")
    parser.add_argument("--image", default=None,
                        help="image for a Docker/Kubernetes work pool (not built here)")
    parser.add_argument("--no-validate", action="store_true",
                        help="do not open the manifest and stores from here (when only the "
                        "workers can reach them)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the script; returns the exit status."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        deployment = make_deployment(args)
    except GalclustError as exc:
        print(f"deploy.py: error: {exc}", file=sys.stderr)
        return 2
    if args.action == "serve":
        run_service(deployment, run_now=args.run_now, prefect_port=args.prefect_port)
        return 0
    print(describe_deployment(deployment, api_url=os.environ.get("PREFECT_API_URL")),
          flush=True)
    if args.action == "deploy":
        if not os.environ.get("PREFECT_API_URL"):
            print("deploy.py: error: set PREFECT_API_URL to the Prefect server that owns "
                  f"the work pool {args.work_pool!r}.", file=sys.stderr)
            return 2
        ids = deploy_to_pool(deployment, image=args.image)
        print(f"deployed to work pool {args.work_pool!r}: {', '.join(map(str, ids))}")
        print(f"start a worker: prefect worker start --pool {args.work_pool}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Job scripts rendered from a profile: an sbatch script (SLURM) or a DaskJob manifest (Kubernetes).

Both run ``distdataeval run`` with the profile. The sbatch script's job process starts the Dask
scheduler itself and submits the workers through dask-jobqueue (the ``slurm`` profile); the
DaskJob's cluster is started by the dask-kubernetes operator, whose job pod finds the scheduler in
``$DASK_SCHEDULER_ADDRESS`` (the packaged ``address`` profile), with the profile's pipeline and
evaluator settings passed as ``--set`` options.
"""

from __future__ import annotations

import math
import shlex

import yaml
from dask.utils import parse_bytes

from distdataeval.errors import InvalidParameterError
from distdataeval.job import schema
from distdataeval.job.profiles import Profile

_INPUT = "${INPUT:?set INPUT to the input Zarr store[/array]}"
_OUTPUT = "${OUTPUT:?set OUTPUT to the output Zarr store}"


def _run_args(profile_arg: str, input: str | None, output: str | None, sets: list[str]) -> list[str]:
    args = ["distdataeval", "run", "--profile", profile_arg]
    args += ["--input", input or _INPUT, "--output", output or _OUTPUT]
    for text in sets:
        args += ["--set", text]
    return args


def _shell_quote(arg: str) -> str:
    if arg.startswith("${"):  # an expansion we mean: double quotes keep it one word
        return f'"{arg}"'
    return shlex.quote(arg)


def _megabytes(text: str) -> int:
    return max(1, math.ceil(parse_bytes(text) / 2**20))


def render_sbatch(profile: Profile, profile_arg: str, input: str | None = None, output: str | None = None) -> str:
    """An sbatch script that runs ``distdataeval run --profile <profile_arg>`` as one SLURM job.

    Parameters
    ----------
    profile : Profile
        A ``slurm`` profile; its ``job`` section sizes the job process.
    profile_arg : str
        The profile as the job will name it (a path visible from the compute node).
    input, output : str, optional
        Input and output stores; by default the script reads ``$INPUT`` and ``$OUTPUT``
        (``sbatch --export=ALL,INPUT=...,OUTPUT=... script``).

    Returns
    -------
    str
        The script, one directive per line.
    """
    job = profile.job
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={job['name']}",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks=1",
        f"#SBATCH --cpus-per-task={job['cores']}",
        f"#SBATCH --mem={_megabytes(job['memory'])}M",
        f"#SBATCH --time={job['walltime']}",
    ]
    if job["queue"]:
        lines.append(f"#SBATCH --partition={job['queue']}")
    if job["account"]:
        lines.append(f"#SBATCH --account={job['account']}")
    lines.append(f"#SBATCH --output={job['name']}-%j.log")
    lines += [f"#SBATCH {d}" for d in job["job-extra-directives"]]
    lines.append("set -euo pipefail")
    lines += list(job["job-script-prologue"])
    args = _run_args(profile_arg, input, output, list(profile.overrides))
    lines.append("exec " + " ".join(_shell_quote(a) for a in args))
    return "\n".join(lines) + "\n"


def daskjob_manifest(profile: Profile, input: str | None = None, output: str | None = None) -> dict:
    """The DaskJob resource (dask-kubernetes operator) that runs the job on Kubernetes.

    The cluster part is dask-kubernetes' own ``make_cluster_spec`` of the ``kubernetes`` section;
    the job container runs ``distdataeval run --profile address`` with every pipeline and
    evaluator setting that differs from the defaults as ``--set`` options.

    Parameters
    ----------
    profile : Profile
        A ``kubernetes`` profile.
    input, output : str, optional
        Input and output stores as the pod sees them; by default ``$(INPUT)`` and ``$(OUTPUT)``,
        environment variables of the job container to fill in.

    Returns
    -------
    dict
        ``{"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskJob", ...}``
    """
    cluster = profile.kubernetes_cluster_spec()
    opts = profile.raw["cluster"]["kubernetes"]
    job = profile.job
    sets = [schema.format_override(key, value) for key, value in profile.changed()]
    args = ["distdataeval", "run", "--profile", "address"]
    args += ["--input", input or "$(INPUT)", "--output", output or "$(OUTPUT)"]
    for text in sets:
        args += ["--set", text]
    memory = f"{_megabytes(job['memory'])}Mi"
    container = {
        "name": "job",
        "image": job["image"] or opts["image"],
        "imagePullPolicy": job["image-pull-policy"],
        "args": args,
        "resources": {
            "requests": {"cpu": str(job["cores"]), "memory": memory},
            "limits": {"cpu": str(job["cores"]), "memory": memory},
        },
    }
    env = [{"name": k, "value": str(v)} for k, v in opts["env"].items()]
    if input is None:
        env.append({"name": "INPUT", "value": "s3://bucket/embeddings.zarr"})
    if output is None:
        env.append({"name": "OUTPUT", "value": "s3://bucket/results.zarr"})
    if env:
        container["env"] = env
    metadata = {"name": job["name"]}
    if opts["namespace"]:
        metadata["namespace"] = opts["namespace"]
    return {
        "apiVersion": "kubernetes.dask.org/v1",
        "kind": "DaskJob",
        "metadata": metadata,
        "spec": {
            "job": {"spec": {"restartPolicy": "Never", "containers": [container]}},
            "cluster": {"spec": cluster["spec"]},
        },
    }


def render_daskjob(profile: Profile, input: str | None = None, output: str | None = None) -> str:
    """:func:`daskjob_manifest` as YAML (``kubectl apply -f``)."""

    class _NoAliases(yaml.SafeDumper):
        def ignore_aliases(self, data):  # noqa: ARG002 - resources shared by containers: write twice
            return True

    return yaml.dump(daskjob_manifest(profile, input, output), Dumper=_NoAliases, sort_keys=False)


def render(profile: Profile, profile_arg: str, input: str | None = None, output: str | None = None) -> str:
    """The job script of ``profile``: an sbatch script (``slurm``) or a DaskJob manifest (``kubernetes``).

    Raises
    ------
    InvalidParameterError
        Another kind of profile (local, pbs, address runs need no rendered script).
    """
    if profile.kind == "slurm":
        return render_sbatch(profile, profile_arg, input, output)
    if profile.kind == "kubernetes":
        return render_daskjob(profile, input, output)
    raise InvalidParameterError(
        f"render makes sbatch scripts (cluster.kind: slurm) and DaskJob manifests (cluster.kind: kubernetes); "
        f"profile {profile.source} has cluster.kind: {profile.kind}"
    )


def main(args) -> int:
    """The ``distdataeval render`` subcommand: print the job script of ``args.profile``."""
    import sys

    from distdataeval.errors import DistDataEvalError
    from distdataeval.job.profiles import load_profile

    try:
        profile = load_profile(args.profile, args.set or ())
        text = render(profile, str(args.profile), args.input, args.output)
    except DistDataEvalError as exc:
        print(f"distdataeval render: error: {exc}", file=sys.stderr)
        return 2
    print(text, end="")
    return 0


def add_parser(sub) -> None:
    """Register ``render`` on the CLI's subparsers."""
    parser = sub.add_parser("render", help="print the sbatch script / DaskJob manifest of a profile")
    parser.add_argument("--profile", required=True, help="profile YAML file or packaged profile name")
    parser.add_argument("--input", default=None, help="input store (default: $INPUT when the job runs)")
    parser.add_argument("--output", default=None, help="output store (default: $OUTPUT when the job runs)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="profile override")
    parser.set_defaults(handler=main)

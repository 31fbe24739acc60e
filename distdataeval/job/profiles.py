"""Job profiles: where the Dask cluster runs and which parameters the job uses.

A profile is a YAML file (``conf/<name>.yaml``) holding only the keys it changes from the packaged
defaults (``distdataeval/job/conf/defaults.yaml``, described by ``schema.yaml``). ``cluster.kind``
picks how :meth:`Profile.client` gets its Dask cluster:

* ``local``: a :class:`distributed.LocalCluster` of worker processes bound to 127.0.0.1;
* ``kubernetes``: dask-kubernetes' operator ``KubeCluster`` (extra ``[kubernetes]``);
* ``slurm`` / ``pbs``: dask-jobqueue's ``SLURMCluster`` / ``PBSCluster`` (extra ``[hpc]``);
* ``address``: an existing scheduler (``cluster.address.address`` or ``$DASK_SCHEDULER_ADDRESS``).

Optional libraries are imported only when their profile starts a cluster.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from distdataeval.errors import DistDataEvalError, InvalidParameterError
from distdataeval.job import schema

logger = logging.getLogger(__name__)

PROFILE_NAMES = ("local", "kubernetes", "slurm", "pbs", "address")
"""Profiles shipped with the package (identical to the repository's ``conf/``)."""

_EXTRAS = {
    "kubernetes": ("dask_kubernetes", "kubernetes", "dask-kubernetes"),
    "slurm": ("dask_jobqueue", "hpc", "dask-jobqueue"),
    "pbs": ("dask_jobqueue", "hpc", "dask-jobqueue"),
}


class ProfileNotFoundError(DistDataEvalError, FileNotFoundError):
    """A profile is neither an existing file nor the name of a packaged profile."""


class MissingExtraError(DistDataEvalError, ImportError):
    """A profile needs an optional dependency that is not installed."""


def packaged_profile_text(name: str) -> str:
    """The text of a packaged profile (``local``, ``kubernetes``, ``slurm``, ``pbs``, ``address``)."""
    return resources.files("distdataeval.job").joinpath("conf", "profiles", f"{name}.yaml").read_text(encoding="utf-8")


def _read(path_or_name: str | os.PathLike) -> tuple[dict, str]:
    path = Path(path_or_name)
    if path.is_file():
        text, source = path.read_text(encoding="utf-8"), str(path)
    elif isinstance(path_or_name, str) and path_or_name in PROFILE_NAMES:
        text, source = packaged_profile_text(path_or_name), f"packaged profile '{path_or_name}'"
    else:
        raise ProfileNotFoundError(
            f"profile {str(path_or_name)!r} not found: give a YAML file or one of {', '.join(PROFILE_NAMES)}"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidParameterError(f"profile {source} is not valid YAML: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidParameterError(f"profile {source} must be a YAML mapping, got {type(data).__name__}")
    return data, source


def load_profile(path_or_name: str | os.PathLike = "local", overrides: Iterable[str] = ()) -> Profile:
    """Load, validate and complete a job profile.

    Parameters
    ----------
    path_or_name : str or os.PathLike
        A YAML file, or the name of a packaged profile (``local``, ``kubernetes``, ``slurm``,
        ``pbs``, ``address``).
    overrides : iterable of str
        ``"key.sub=value"`` settings applied after the file (values read as YAML:
        ``pipeline.n_clusters=4`` is an integer, ``cluster.slurm.worker-extra-args=[--lifetime, 1h]``
        a list).

    Returns
    -------
    Profile
        The validated profile; every key present (packaged defaults filled in).

    Raises
    ------
    ProfileNotFoundError
        ``path_or_name`` is neither a file nor a packaged profile.
    UnknownParameterError
        An unknown key (the message names the nearest valid key).
    InvalidParameterError
        A malformed override, or a value of the wrong type or range.

    Examples
    --------
    >>> profile = load_profile("local", ["pipeline.knn=exact"])
    >>> profile.kind, profile.pipeline["knn"]
    ('local', 'exact')
    """
    data, source = _read(path_or_name)
    settings = schema.merge(schema.packaged_defaults(), schema.validate(data, source))
    overrides = list(overrides)
    for text in overrides:
        settings = schema.merge(settings, schema.validate(schema.parse_override(text), f"override {text!r}"))
    return Profile(raw=settings, source=source, overrides=tuple(overrides))


def _kwargs(section: dict) -> dict:
    return {key.replace("-", "_"): copy.deepcopy(value) for key, value in section.items()}


@dataclasses.dataclass(frozen=True)
class Profile:
    """A validated job profile.

    Attributes
    ----------
    raw : dict
        Every setting (packaged defaults completed by the profile and its overrides).
    source : str
        Where the profile came from.
    overrides : tuple of str
        The ``key=value`` overrides applied.
    """

    raw: dict
    source: str = "profile"
    overrides: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        """``local``, ``kubernetes``, ``slurm``, ``pbs`` or ``address``."""
        return self.raw["cluster"]["kind"]

    @property
    def cluster_options(self) -> dict:
        """The settings of the selected cluster kind, keys as Python keyword names."""
        return _kwargs(self.raw["cluster"][self.kind])

    @property
    def pipeline(self) -> dict:
        """:func:`distdataeval.cluster` parameters (algorithm, knn, n_clusters, ..., seed)."""
        return copy.deepcopy(self.raw["pipeline"])

    @property
    def evaluators(self) -> dict:
        """Evaluator settings: ``duplicates``, ``outliers``, ``priority`` (each with ``enabled``)."""
        return copy.deepcopy(self.raw["evaluators"])

    @property
    def job(self) -> dict:
        """Resources of the process that runs the job (rendered sbatch script / DaskJob pod)."""
        return copy.deepcopy(self.raw["job"])

    def security(self):
        """:class:`distributed.security.Security` from the ``security`` section, or None without TLS.

        Returns
        -------
        distributed.security.Security or None
        """
        settings = self.raw["security"]
        if not any(settings.values()):
            return None
        from distributed.security import Security

        files = {k: v for k, v in _kwargs(settings).items() if k != "require_encryption"}
        for key, value in files.items():
            if value is not None and not Path(value).is_file():
                raise InvalidParameterError(f"profile key 'security.{key.replace('_', '-')}' names {value!r}, which is not a file")
        return Security(require_encryption=bool(settings["require-encryption"]), **files)

    # -- clusters --------------------------------------------------------------------------------

    def _require(self, module: str, kind: str | None = None):
        import importlib

        kind = kind or self.kind
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            _, extra, dist = _EXTRAS[kind]
            raise MissingExtraError(
                f"the '{kind}' profile needs {dist}, which is not installed ({exc}); "
                f"install it with: pip install 'distdataeval[{extra}]'"
            ) from None

    def kubernetes_cluster_spec(self) -> dict:
        """The DaskCluster resource of the ``kubernetes`` section, built by dask-kubernetes'
        own ``make_cluster_spec`` (no Kubernetes cluster needed).

        Returns
        -------
        dict
            ``{"apiVersion": "kubernetes.dask.org/v1", "kind": "DaskCluster", "metadata": ..., "spec": ...}``
        """
        operator = self._require("dask_kubernetes.operator", "kubernetes")
        opts = _kwargs(self.raw["cluster"]["kubernetes"])
        spec = operator.make_cluster_spec(
            name=opts["name"],
            image=opts["image"],
            n_workers=opts["n_workers"],
            resources=opts["resources"] or None,
            env={k: str(v) for k, v in opts["env"].items()},
            worker_command=opts["worker_command"],
            scheduler_service_type=opts["scheduler_service_type"],
            idle_timeout=opts["idle_timeout"],
        )
        if opts["namespace"]:
            spec["metadata"]["namespace"] = opts["namespace"]
        return spec

    def scheduler_address(self) -> str:
        """The ``address`` profile's scheduler: ``cluster.address.address``, else
        ``$DASK_SCHEDULER_ADDRESS`` (Dask's ``scheduler-address`` config)."""
        address = self.raw["cluster"]["address"]["address"]
        if address:
            return address
        import dask

        address = os.environ.get("DASK_SCHEDULER_ADDRESS") or dask.config.get("scheduler-address", None)
        if not address:
            raise InvalidParameterError(
                f"profile {self.source} connects to an existing scheduler but names none: "
                "set cluster.address.address or the DASK_SCHEDULER_ADDRESS environment variable"
            )
        return address

    def _start_local(self, security):
        import dask
        from dask.system import CPU_COUNT  # cores this process may use (affinity, cgroup quota)
        from distributed import LocalCluster

        from distdataeval.runtime.client import _restored_environ, _worker_environ

        opts = self.cluster_options
        threads = opts["threads_per_worker"]
        environ = _worker_environ(threads)
        saved = {key: os.environ.get(key) for key in environ}
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}), _restored_environ(saved):
            return LocalCluster(
                n_workers=opts["n_workers"] or max(1, CPU_COUNT // threads),
                threads_per_worker=threads,
                processes=True,
                host="127.0.0.1",
                dashboard_address=opts["dashboard_address"],
                memory_limit=opts["memory_limit"],
                security=security,
                protocol="tls://" if security is not None else None,
                silence_logs=logging.ERROR,
            )

    def jobqueue_cluster(self):
        """dask-jobqueue's ``SLURMCluster`` / ``PBSCluster`` of the ``slurm`` / ``pbs`` section,
        with no worker job submitted yet (its scheduler runs in this process).

        Keys left null fall back to dask-jobqueue's own config (``jobqueue.slurm.*``), then its
        defaults; ``python`` null is this interpreter.

        Returns
        -------
        dask_jobqueue.SLURMCluster or dask_jobqueue.PBSCluster
        """
        if self.kind not in ("slurm", "pbs"):
            raise InvalidParameterError(f"profile {self.source} has cluster.kind {self.kind!r}, not slurm or pbs")
        jobqueue = self._require("dask_jobqueue")
        opts = self.cluster_options
        opts.pop("n_workers")
        opts["python"] = opts["python"] or sys.executable
        kwargs = {k: v for k, v in opts.items() if v is not None}
        security = self.security()
        if security is not None:
            kwargs["security"] = security
            kwargs["protocol"] = "tls://"
        cls = jobqueue.SLURMCluster if self.kind == "slurm" else jobqueue.PBSCluster
        return cls(**kwargs)

    def _start_jobqueue(self):
        cluster = self.jobqueue_cluster()
        n_workers = self.cluster_options["n_workers"]
        cluster.scale(n=n_workers)
        return cluster, n_workers

    def _start_kubernetes(self):
        operator = self._require("dask_kubernetes.operator")
        opts = self.cluster_options
        return operator.KubeCluster(
            custom_cluster_spec=self.kubernetes_cluster_spec(),
            namespace=opts["namespace"],
            shutdown_on_close=opts["shutdown_on_close"],
        ), opts["n_workers"]

    @contextlib.contextmanager
    def client(self) -> Iterator:
        """Start (or connect to) the profile's Dask cluster; yield a :class:`distributed.Client`.

        The cluster this call started is closed on exit; an ``address`` profile's scheduler is
        left running. SLURM / PBS / Kubernetes: waits until the requested workers have joined.

        Yields
        ------
        distributed.Client
        """
        from distributed import Client

        security = self.security()
        cluster = None
        wait = 0
        if self.kind == "local":
            cluster = self._start_local(security)
        elif self.kind in ("slurm", "pbs"):
            cluster, wait = self._start_jobqueue()
        elif self.kind == "kubernetes":
            cluster, wait = self._start_kubernetes()
        try:
            if cluster is None:
                address = self.scheduler_address()
                client = Client(address, security=security, timeout=self.raw["cluster"]["address"]["timeout"], set_as_default=False)
            else:
                client = Client(cluster, security=security, set_as_default=False)
            try:
                if wait:
                    logger.info("waiting for %d workers of the %s cluster", wait, self.kind)
                    client.wait_for_workers(wait)
                yield client
            finally:
                client.close()
        finally:
            if cluster is not None:
                cluster.close()

    def to_yaml(self) -> str:
        """The complete settings as YAML."""
        return yaml.safe_dump(self.raw, sort_keys=False)

    def changed(self, sections: Iterable[str] = ("pipeline", "evaluators")) -> list[tuple[str, Any]]:
        """``(dotted key, value)`` of the settings in ``sections`` that differ from the defaults."""
        base = schema.packaged_defaults()
        out = []
        for name in sections:
            out.extend(schema.diff({name: self.raw[name]}, {name: base[name]}))
        return out

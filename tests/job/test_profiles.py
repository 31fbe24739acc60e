"""Job profiles: conf/ in sync with the packaged copies, defaults with the schema; validation,
nearest-key errors, overrides, TLS settings reaching distributed's Security, real local clusters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distdataeval.errors import InvalidParameterError, UnknownParameterError
from distdataeval.job import schema
from distdataeval.job.profiles import (
    PROFILE_NAMES,
    MissingExtraError,
    ProfileNotFoundError,
    load_profile,
    packaged_profile_text,
)

ROOT = Path(__file__).resolve().parents[2]
CONF = ROOT / "conf"


def _leaves(tree: dict, path: str = "") -> set[str]:
    out = set()
    for key, value in tree.items():
        where = f"{path}.{key}" if path else key
        if isinstance(value, dict) and value and key not in ("resources", "env", "scheduler-options"):
            out |= _leaves(value, where)
        else:
            out.add(where)
    return out


def _schema_leaves(node: dict, path: str = "") -> set[str]:
    out = set()
    for key, child in node["properties"].items():
        where = f"{path}.{key}" if path else key
        out |= _schema_leaves(child, where) if "properties" in child else {where}
    return out


class TestConfInSync:
    def test_conf_holds_exactly_the_packaged_profiles(self):
        from importlib import resources

        packaged = resources.files("distdataeval.job").joinpath("conf", "profiles")
        assert sorted(p.stem for p in CONF.glob("*.yaml")) == sorted(PROFILE_NAMES)
        assert sorted(p.name for p in packaged.iterdir()) == sorted(f"{n}.yaml" for n in PROFILE_NAMES)

    @pytest.mark.parametrize("name", PROFILE_NAMES)
    def test_conf_file_equals_packaged_copy(self, name):
        assert (CONF / f"{name}.yaml").read_text(encoding="utf-8") == packaged_profile_text(name)

    def test_every_default_is_described_and_every_described_key_has_a_default(self):
        # as dask's test_schema_is_complete: the two files name the same keys
        assert _leaves(schema.packaged_defaults()) == _schema_leaves(schema.packaged_schema())

    def test_defaults_validate_against_the_schema(self):
        defaults = schema.packaged_defaults()
        assert schema.validate(defaults, "defaults") == defaults

    def test_every_schema_leaf_has_a_description(self):
        def walk(node, path=""):
            for key, child in node["properties"].items():
                if "properties" in child:
                    yield from walk(child, f"{path}{key}.")
                else:
                    yield f"{path}{key}", child

        missing = [k for k, child in walk(schema.packaged_schema()) if not child.get("description")]
        assert missing == []

    def test_jobqueue_keys_are_dask_jobqueues_own(self):
        # the slurm / pbs sections use dask-jobqueue's own key names (its jobqueue.yaml)
        import dask_jobqueue

        theirs = yaml.safe_load((Path(dask_jobqueue.__file__).parent / "jobqueue.yaml").read_text())["jobqueue"]
        for kind in ("slurm", "pbs"):
            ours = set(schema.packaged_defaults()["cluster"][kind]) - {"n-workers"}
            assert ours <= set(theirs[kind]), ours - set(theirs[kind])


class TestLoad:
    @pytest.mark.parametrize("name", PROFILE_NAMES)
    def test_every_conf_profile_loads_and_validates(self, name):
        profile = load_profile(CONF / f"{name}.yaml")
        assert profile.kind == name
        # complete: every key of the defaults is present
        assert _leaves(profile.raw) == _leaves(schema.packaged_defaults())
        # the file's own settings win over the defaults
        own = yaml.safe_load((CONF / f"{name}.yaml").read_text())
        for key in _leaves(own):
            mine, theirs = profile.raw, own
            for part in key.split("."):
                mine, theirs = mine[part], theirs[part]
            assert mine == theirs, key

    @pytest.mark.parametrize("name", PROFILE_NAMES)
    def test_packaged_profile_by_name_equals_the_file(self, name):
        assert load_profile(name).raw == load_profile(CONF / f"{name}.yaml").raw

    def test_default_profile_is_local(self):
        profile = load_profile()
        assert profile.kind == "local"
        assert profile.pipeline == {
            "algorithm": "hdbscan", "knn": "auto", "n_clusters": None, "max_cluster_size": None,
            "n_init": "auto", "reassign_noise": True, "chunk_rows": None, "seed": None,
        }
        assert set(profile.evaluators) == {"duplicates", "outliers", "priority"}
        assert profile.evaluators["outliers"] == {"enabled": True, "n_std": 3.0, "cluster_threshold": None}

    def test_missing_profile(self, tmp_path):
        with pytest.raises(ProfileNotFoundError, match=r"profile '.*nope.yaml' not found: give a YAML file or one of local"):
            load_profile(tmp_path / "nope.yaml")
        with pytest.raises(FileNotFoundError):  # also the builtin
            load_profile("slurmm")

    def test_not_a_mapping(self, tmp_path):
        path = tmp_path / "p.yaml"
        path.write_text("- a\n- b\n")
        with pytest.raises(InvalidParameterError, match="must be a YAML mapping, got list"):
            load_profile(path)

    def test_invalid_yaml(self, tmp_path):
        path = tmp_path / "p.yaml"
        path.write_text("cluster: {kind: local\n")
        with pytest.raises(InvalidParameterError, match="is not valid YAML"):
            load_profile(path)

    def test_empty_file_is_the_defaults(self, tmp_path):
        path = tmp_path / "p.yaml"
        path.write_text("# nothing\n")
        assert load_profile(path).raw == schema.packaged_defaults()


class TestUnknownKeys:
    @pytest.mark.parametrize(
        ("text", "wrong", "nearest"),
        [
            ("cluster:\n  slurm:\n    walltme: '00:10:00'\n", "cluster.slurm.walltme", "cluster.slurm.walltime"),
            ("cluster:\n  kubernetes:\n    n-worker: 3\n", "cluster.kubernetes.n-worker", "cluster.kubernetes.n-workers"),
            ("pipline:\n  knn: exact\n", "pipline", "pipeline"),
            ("evaluators:\n  outliers:\n    threshold: 3.0\n", "evaluators.outliers.threshold", "evaluators.outliers.cluster_threshold"),
            ("security:\n  tls-ca: ca.pem\n", "security.tls-ca", "security.tls-ca-file"),
        ],
    )
    def test_unknown_key_names_the_nearest(self, tmp_path, text, wrong, nearest):
        path = tmp_path / "p.yaml"
        path.write_text(text)
        with pytest.raises(UnknownParameterError, match=rf"unknown profile key '{wrong}' in .*p.yaml; did you mean '{nearest}'\?"):
            load_profile(path)

    def test_unknown_key_without_a_near_one_lists_the_valid_keys(self, tmp_path):
        path = tmp_path / "p.yaml"
        path.write_text("cluster:\n  address:\n    zzzzzz: 1\n")
        with pytest.raises(UnknownParameterError, match=r"'cluster.address.zzzzzz' .*valid keys here: address, timeout"):
            load_profile(path)

    def test_unknown_key_in_an_override(self):
        with pytest.raises(UnknownParameterError, match=r"'pipeline.n_cluster' in override 'pipeline.n_cluster=3'; did you mean 'pipeline.n_clusters'"):
            load_profile("local", ["pipeline.n_cluster=3"])

    def test_is_also_a_type_error(self):
        with pytest.raises(TypeError):
            load_profile("local", ["nope=1"])


class TestValues:
    @pytest.mark.parametrize(
        ("override", "message"),
        [
            ("cluster.kind=yarn", r"'cluster.kind' .* is 'yarn'; expected one of 'local', 'kubernetes', 'slurm', 'pbs', 'address'"),
            ("cluster.slurm.cores=two", r"'cluster.slurm.cores' .* is 'two' \(str\); expected integer"),
            ("cluster.slurm.cores=0", r"'cluster.slurm.cores' .* is 0; it must be >= 1"),
            ("pipeline.reassign_noise=1", r"'pipeline.reassign_noise' .* is 1 \(int\); expected boolean"),
            ("pipeline.n_clusters=true", r"'pipeline.n_clusters' .* is True \(bool\); expected integer or null"),
            ("pipeline.knn=fast", r"'pipeline.knn' .* expected one of 'auto', 'exact', 'approx'"),
            ("cluster.kubernetes.env.A=[1]", r"'cluster.kubernetes.env.A' .* expected string or number or boolean"),
            ("cluster.slurm=3", r"profile section 'cluster.slurm' .* must be a mapping, got 3"),
        ],
    )
    def test_wrong_values_are_named(self, override, message):
        with pytest.raises(InvalidParameterError, match=message):
            load_profile("local", [override])

    @pytest.mark.parametrize(
        ("override", "message"),
        [
            ("job.memory=4 gigs", r"'job.memory' .* is '4 gigs'; expected a size such as \"4GiB\""),
            ("cluster.slurm.memory=0B", r"'cluster.slurm.memory' .* is '0B'; expected a size"),
            ("cluster.pbs.walltime=1h", r"'cluster.pbs.walltime' .* is '1h'; expected a wall time such as \"01:30:00\""),
            ("cluster.slurm.walltime=1:00:00", r"is 3600 \(int\); expected string \(quote wall times: YAML reads an unquoted 1:00:00"),
            ("cluster.address.timeout=soon", r"'cluster.address.timeout' .* is 'soon'; expected a duration"),
            ("cluster.local.memory-limit=lots", r"'cluster.local.memory-limit' .* is 'lots'; expected \"auto\" or a size"),
        ],
    )
    def test_formats_checked_at_load(self, override, message):
        with pytest.raises(InvalidParameterError, match=message):
            load_profile("local", [override])

    @pytest.mark.parametrize(
        "override",
        ["job.memory=1.5GiB", "cluster.slurm.walltime=2-00:00:00", "cluster.slurm.walltime='30'",
         "cluster.slurm.walltime='00:30:00'", "cluster.address.timeout=5 minutes", "cluster.address.timeout=10",
         "cluster.local.memory-limit=auto", "cluster.local.memory-limit=3GB", "cluster.local.memory-limit=1000000000"],
    )
    def test_formats_accept(self, override):
        load_profile("local", [override])


class TestOverrides:
    def test_values_are_yaml_typed(self):
        profile = load_profile(
            "slurm",
            [
                "pipeline.n_clusters=4",
                "pipeline.knn=exact",
                "pipeline.reassign_noise=false",
                "pipeline.seed=null",
                "evaluators.outliers.cluster_threshold=3.5",
                "cluster.slurm.worker-extra-args=[--lifetime, 55m]",
                "cluster.slurm.scheduler-options={host: 127.0.0.1}",
                "cluster.slurm.walltime='00:10:00'",
            ],
        )
        assert profile.pipeline["n_clusters"] == 4
        assert profile.pipeline["knn"] == "exact"
        assert profile.pipeline["reassign_noise"] is False
        assert profile.pipeline["seed"] is None
        assert profile.evaluators["outliers"]["cluster_threshold"] == 3.5
        opts = profile.cluster_options
        assert opts["worker_extra_args"] == ["--lifetime", "55m"]
        assert opts["scheduler_options"] == {"host": "127.0.0.1"}
        assert opts["walltime"] == "00:10:00"
        # untouched settings keep the profile's / defaults' values
        assert opts["cores"] == 1 and opts["memory"] == "2GiB"
        assert profile.overrides[0] == "pipeline.n_clusters=4"

    def test_dash_and_underscore_spell_the_same_key(self):
        a = load_profile("local", ["cluster.local.n_workers=3", "pipeline.max-cluster-size=50"])
        assert a.raw["cluster"]["local"]["n-workers"] == 3
        assert a.pipeline["max_cluster_size"] == 50
        assert "n_workers" not in a.raw["cluster"]["local"]

    def test_later_overrides_win(self):
        assert load_profile("local", ["pipeline.knn=exact", "pipeline.knn=approx"]).pipeline["knn"] == "approx"

    def test_free_form_mapping_replaced_whole_sections_merged(self):
        profile = load_profile("kubernetes", ["cluster.kubernetes.resources={limits: {cpu: '4'}}"])
        assert profile.raw["cluster"]["kubernetes"]["resources"] == {"limits": {"cpu": "4"}}
        assert profile.raw["cluster"]["kubernetes"]["image"] == "ghcr.io/dask/dask:latest"

    @pytest.mark.parametrize("text", ["pipeline.knn", "=3", "pipeline..knn=3", "a.b=[1, 2"])
    def test_malformed(self, text):
        with pytest.raises(InvalidParameterError, match="override"):
            schema.parse_override(text)

    def test_parse_override(self):
        assert schema.parse_override("a.b.c=1") == {"a": {"b": {"c": 1}}}
        assert schema.parse_override("a=x=y") == {"a": "x=y"}
        assert schema.parse_override("a=") == {"a": None}

    @pytest.mark.parametrize("value", ["approx", "null", "1", "a: b", 3, 2.5, None, True, [1, "x"], {"a": 1}, "00:10:00"])
    def test_format_override_roundtrips(self, value):
        assert schema.parse_override(schema.format_override("k", value)) == {"k": value}

    def test_changed_lists_settings_that_differ_from_the_defaults(self):
        profile = load_profile("local", ["pipeline.knn=exact", "evaluators.priority.k=7", "cluster.local.n-workers=2"])
        assert profile.changed() == [("pipeline.knn", "exact"), ("evaluators.priority.k", 7)]


class TestSecurity:
    def test_no_tls_by_default(self):
        assert load_profile("local").security() is None

    def test_tls_settings_reach_security(self, tmp_path):
        from distributed.security import Security

        names = ["tls-ca-file", "tls-client-cert", "tls-client-key", "tls-scheduler-cert", "tls-scheduler-key",
                 "tls-worker-cert", "tls-worker-key"]
        sets = []
        for name in names:
            (tmp_path / f"{name}.pem").write_text("x")
            sets.append(f"security.{name}={tmp_path / (name + '.pem')}")
        sec = load_profile("address", sets + ["security.require-encryption=true"]).security()
        assert isinstance(sec, Security)
        for name in names:
            assert getattr(sec, name.replace("-", "_")) == str(tmp_path / f"{name}.pem")
        assert sec.require_encryption is True

    def test_missing_certificate_file(self, tmp_path):
        profile = load_profile("address", [f"security.tls-ca-file={tmp_path / 'ca.pem'}"])
        with pytest.raises(InvalidParameterError, match=r"'security.tls-ca-file' names .*ca.pem', which is not a file"):
            profile.security()

    def test_local_cluster_over_tls(self, tmp_path):
        """A real TLS LocalCluster from the profile's certificate files: the scheduler speaks tls://."""
        pytest.importorskip("cryptography")  # distributed's own temporary-certificate helper needs it
        from distributed.security import Security

        tmp = Security.temporary()  # one self-signed CA + certificate, as PEM text
        ca = tmp_path / "ca.pem"
        ca.write_text(tmp.tls_ca_file)
        cert = tmp_path / "cert.pem"
        cert.write_text(tmp.tls_client_cert)
        key = tmp_path / "key.pem"
        key.write_text(tmp.tls_client_key)
        sets = [f"security.tls-ca-file={ca}", "security.require-encryption=true", "cluster.local.n-workers=1"]
        for role in ("client", "scheduler", "worker"):
            sets += [f"security.tls-{role}-cert={cert}", f"security.tls-{role}-key={key}"]
        with load_profile("local", sets).client() as client:
            assert client.scheduler.address.startswith("tls://127.0.0.1:")
            assert all(w.startswith("tls://127.0.0.1:") for w in client.scheduler_info()["workers"])
            assert client.submit(sum, [1, 2, 3]).result() == 6
            # an address profile with the same TLS settings connects; one without them cannot
            address = client.scheduler.address
            with load_profile("address", [f"cluster.address.address={address}", *sets[:2],
                                          f"security.tls-client-cert={cert}", f"security.tls-client-key={key}"]).client() as other:
                assert other.submit(sum, [4, 5]).result() == 9
            with pytest.raises(Exception):  # noqa: B017 - distributed raises TypeError/OSError by version
                with load_profile("address", [f"cluster.address.address={address}", "cluster.address.timeout=3s"]).client():
                    pass


class TestClients:
    def test_local_profile_starts_worker_processes_on_loopback(self):
        with load_profile("local", ["cluster.local.n-workers=2"]).client() as client:
            workers = client.scheduler_info()["workers"]
            assert len(workers) == 2
            assert all(addr.startswith("tcp://127.0.0.1:") for addr in workers)
            assert client.scheduler.address.startswith("tcp://127.0.0.1:")
            pids = set(client.run(os.getpid).values())
            assert len(pids) == 2 and os.getpid() not in pids
            # BLAS / numba pools capped to the worker's threads
            assert set(client.run(lambda: os.environ.get("NUMBA_NUM_THREADS")).values()) == {"1"}

    def test_address_profile_connects_to_an_existing_scheduler(self, dask_client, monkeypatch):
        address = dask_client.scheduler.address
        with load_profile("address", [f"cluster.address.address={address}"]).client() as client:
            assert client.scheduler.address == address
            assert client.submit(lambda: 41 + 1).result() == 42
        assert dask_client.status == "running"  # not ours to close
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)
        with load_profile("address").client() as client:
            assert client.scheduler.address == address

    def test_address_profile_without_address(self, monkeypatch):
        import dask

        monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
        with dask.config.set({"scheduler-address": None}):
            with pytest.raises(InvalidParameterError, match="names none: set cluster.address.address or the DASK_SCHEDULER_ADDRESS"):
                with load_profile("address").client():
                    pass

    def test_kubernetes_cluster_spec_from_dask_kubernetes_builder(self):
        from dask_kubernetes.operator import make_cluster_spec

        profile = load_profile("kubernetes", ["cluster.kubernetes.namespace=research", "cluster.kubernetes.env={A: 1}"])
        spec = profile.kubernetes_cluster_spec()
        expected = make_cluster_spec(
            name="distdataeval",
            image="ghcr.io/dask/dask:latest",
            n_workers=2,
            resources={"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}},
            env={"A": "1"},
        )
        assert spec["metadata"] == {"name": "distdataeval", "namespace": "research"}
        assert spec["spec"] == expected["spec"]
        assert spec["spec"]["worker"]["replicas"] == 2
        worker = spec["spec"]["worker"]["spec"]["containers"][0]
        assert worker["env"] == [{"name": "A", "value": "1"}]
        assert worker["resources"]["limits"] == {"cpu": "1", "memory": "2Gi"}

    def test_missing_extra_names_the_pip_command(self):
        # a fresh interpreter in which dask_jobqueue / dask_kubernetes cannot be imported
        code = (
            "import sys; sys.modules['dask_jobqueue'] = None; sys.modules['dask_kubernetes'] = None\n"
            "from distdataeval.job.profiles import load_profile, MissingExtraError\n"
            "for name in ('slurm', 'kubernetes'):\n"
            "    try:\n"
            "        with load_profile(name).client(): pass\n"
            "    except MissingExtraError as exc: print(exc)\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
        lines = out.strip().splitlines()
        assert len(lines) == 2
        assert lines[0].startswith("the 'slurm' profile needs dask-jobqueue, which is not installed")
        assert lines[0].endswith("install it with: pip install 'distdataeval[hpc]'")
        assert lines[1].startswith("the 'kubernetes' profile needs dask-kubernetes, which is not installed")
        assert lines[1].endswith("install it with: pip install 'distdataeval[kubernetes]'")
        assert issubclass(MissingExtraError, ImportError)

    def test_optional_libraries_not_imported_by_local_profiles(self):
        code = (
            "import sys\n"
            "from distdataeval.job.profiles import load_profile\n"
            "from distdataeval.job.render import render\n"
            "load_profile('local'); load_profile('slurm'); load_profile('kubernetes')\n"
            "print(sorted(m for m in ('dask_jobqueue', 'dask_kubernetes', 'kr8s') if m in sys.modules))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
        assert out.strip() == "[]"


class TestJobqueue:
    """The slurm / pbs sections reach dask-jobqueue: its own worker job scripts, line by line
    (the scheduler starts in this process on loopback; no job is submitted)."""

    def test_slurm_worker_job_script(self, tmp_path):
        profile = load_profile(ROOT / "conf/slurm.yaml", [
            "cluster.slurm.scheduler-options={host: 127.0.0.1, dashboard_address: null}",
            "cluster.slurm.queue=compute", "cluster.slurm.account=proj1",
            "cluster.slurm.job-extra-directives=[--exclusive]",
            "cluster.slurm.job-script-prologue=[module load python]",
            f"cluster.slurm.log-directory={tmp_path}",
            "cluster.slurm.worker-extra-args=[--lifetime, 55m]",
            "cluster.slurm.cores=2", "cluster.slurm.processes=2", "cluster.slurm.memory=3GiB",
        ])
        with profile.jobqueue_cluster() as cluster:
            lines = [line for line in cluster.job_script().splitlines() if line]
            address = cluster.scheduler_address
        assert address.startswith("tcp://127.0.0.1:")
        assert lines[:-1] == [
            "#!/usr/bin/env bash",
            "#SBATCH -J dask-worker",
            f"#SBATCH -e {tmp_path}/dask-worker-%J.err",
            f"#SBATCH -o {tmp_path}/dask-worker-%J.out",
            "#SBATCH -p compute",
            "#SBATCH -A proj1",
            "#SBATCH -n 1",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --mem=3G",
            "#SBATCH -t 01:00:00",
            "#SBATCH --exclusive",
            "module load python",
        ]
        assert lines[-1].split() == [
            sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", "dummy-name",
            "--nthreads", "1", "--memory-limit", "1.50GiB", "--nworkers", "2", "--nanny", "--death-timeout", "60",
            "--lifetime", "55m",
        ]

    def test_pbs_worker_job_script(self):
        profile = load_profile(ROOT / "conf/pbs.yaml", [
            "cluster.pbs.scheduler-options={host: 127.0.0.1, dashboard_address: null}",
            "cluster.pbs.queue=workq", "cluster.pbs.account=proj1",
            "cluster.pbs.resource-spec=select=1:ncpus=1:mem=2GB",
            "cluster.pbs.job-extra-directives=[-m abe]",
            "cluster.pbs.walltime='00:20:00'",
        ])
        with profile.jobqueue_cluster() as cluster:
            lines = [line for line in cluster.job_script().splitlines() if line]
            address = cluster.scheduler_address
        assert lines[:-1] == [
            "#!/usr/bin/env bash",
            "#PBS -N dask-worker",
            "#PBS -q workq",
            "#PBS -A proj1",
            "#PBS -l select=1:ncpus=1:mem=2GB",
            "#PBS -l walltime=00:20:00",
            "#PBS -m abe",
        ]
        assert lines[-1].split() == [
            sys.executable, "-m", "distributed.cli.dask_worker", address, "--name", "dummy-name",
            "--nthreads", "1", "--memory-limit", "2.00GiB", "--nanny", "--death-timeout", "60",
        ]

    def test_not_a_jobqueue_profile(self):
        with pytest.raises(InvalidParameterError, match="has cluster.kind 'local', not slurm or pbs"):
            load_profile("local").jobqueue_cluster()


def test_kubernetes_client_hands_the_spec_to_kubecluster(monkeypatch):
    """Without a Kubernetes cluster: KubeCluster receives the make_cluster_spec resource and the
    namespace; the client waits for the profile's worker count and closes the cluster."""
    import dask_kubernetes.operator as operator

    seen = {}

    class FakeKubeCluster:
        def __init__(self, **kwargs):
            seen.update(kwargs)
            from distributed import LocalCluster

            self._local = LocalCluster(n_workers=1, processes=False, dashboard_address=None)

        def __getattr__(self, name):  # the rest of the Cluster interface Client uses
            return getattr(self._local, name)

        def close(self):
            seen["closed"] = True
            self._local.close()

    monkeypatch.setattr(operator, "KubeCluster", FakeKubeCluster)
    profile = load_profile("kubernetes", ["cluster.kubernetes.namespace=ml", "cluster.kubernetes.n-workers=1"])
    with profile.client() as client:
        assert client.submit(lambda: 2 * 21).result() == 42
    assert seen["custom_cluster_spec"] == profile.kubernetes_cluster_spec()
    assert seen["namespace"] == "ml" and seen["shutdown_on_close"] is True
    assert seen["closed"] is True


@pytest.mark.parametrize(
    ("section", "cls"),
    [("duplicates", "Duplicates"), ("outliers", "Outliers"), ("priority", "Prioritize")],
)
def test_evaluator_settings_are_the_evaluators_parameters(section, cls):
    """Each evaluators.<name> key (but ``enabled``) is a parameter of the evaluator class, with the
    class's own default, and the class accepts the profile's settings."""
    import importlib
    import inspect

    module = importlib.import_module(f"distdataeval.evaluators.{'prioritize' if section == 'priority' else section}")
    evaluator = getattr(module, cls)
    params = inspect.signature(evaluator).parameters
    settings = load_profile("local").evaluators[section]
    assert settings.pop("enabled") is True
    for key, value in settings.items():
        assert key in params, key
        assert params[key].default == value, key
    evaluator(**settings)

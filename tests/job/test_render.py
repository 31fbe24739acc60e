"""Rendered job scripts: the sbatch script and the DaskJob manifest, line by line; jobs/ in sync."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from distdataeval.errors import InvalidParameterError
from distdataeval.job.profiles import load_profile
from distdataeval.job.render import daskjob_manifest, render, render_sbatch

ROOT = Path(__file__).resolve().parents[2]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "distdataeval", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


class TestSbatch:
    def test_default_slurm_profile_line_by_line(self):
        text = render_sbatch(load_profile(ROOT / "conf/slurm.yaml"), "conf/slurm.yaml")
        assert text.splitlines() == [
            "#!/usr/bin/env bash",
            "#SBATCH --job-name=distdataeval",
            "#SBATCH --nodes=1",
            "#SBATCH --ntasks=1",
            "#SBATCH --cpus-per-task=1",
            "#SBATCH --mem=4096M",
            "#SBATCH --time=02:00:00",
            "#SBATCH --output=distdataeval-%j.log",
            "set -euo pipefail",
            'exec distdataeval run --profile conf/slurm.yaml --input "${INPUT:?set INPUT to the input Zarr store[/array]}"'
            ' --output "${OUTPUT:?set OUTPUT to the output Zarr store}"',
        ]

    def test_job_section_and_overrides(self):
        sets = [
            "job.name=embed-eval",
            "job.cores=2",
            "job.memory=1.5GiB",
            "job.walltime='00:30:00'",
            "job.queue=gpu",
            "job.account=proj1",
            "job.job-extra-directives=[--exclusive, --mail-type=END]",
            "job.job-script-prologue=[module load python, source ~/venv/bin/activate]",
            "pipeline.knn=approx",
        ]
        profile = load_profile(ROOT / "conf/slurm.yaml", sets)
        text = render_sbatch(profile, "/home/u/slurm.yaml", "/data/emb.zarr/x", "/data/out dir.zarr")
        lines = text.splitlines()
        assert lines[:13] == [
            "#!/usr/bin/env bash",
            "#SBATCH --job-name=embed-eval",
            "#SBATCH --nodes=1",
            "#SBATCH --ntasks=1",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --mem=1536M",
            "#SBATCH --time=00:30:00",
            "#SBATCH --partition=gpu",
            "#SBATCH --account=proj1",
            "#SBATCH --output=embed-eval-%j.log",
            "#SBATCH --exclusive",
            "#SBATCH --mail-type=END",
            "set -euo pipefail",
        ]
        assert lines[13:15] == ["module load python", "source ~/venv/bin/activate"]
        assert len(lines) == 16
        # the command line, as the shell splits it: the overrides are passed on unchanged
        assert lines[15].startswith("exec ")
        assert shlex.split(lines[15][5:]) == [
            "distdataeval", "run", "--profile", "/home/u/slurm.yaml",
            "--input", "/data/emb.zarr/x", "--output", "/data/out dir.zarr",
            *[part for s in sets for part in ("--set", s)],
        ]

    def test_script_passes_bash_syntax_check(self, tmp_path):
        path = tmp_path / "job.sbatch"
        path.write_text(render_sbatch(load_profile("slurm", ["job.job-script-prologue=[echo hi]"]), "slurm"))
        subprocess.run(["bash", "-n", str(path)], check=True)

    def test_missing_input_variable_stops_the_script(self, tmp_path):
        # the default script reads $INPUT / $OUTPUT and fails clearly without them
        path = tmp_path / "job.sbatch"
        path.write_text(render_sbatch(load_profile("slurm"), "slurm"))
        out = subprocess.run(["bash", str(path)], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
        assert out.returncode != 0
        assert "INPUT: set INPUT to the input Zarr store[/array]" in out.stderr


class TestDaskJob:
    def test_manifest_line_by_line(self):
        text = render(load_profile(ROOT / "conf/kubernetes.yaml"), "conf/kubernetes.yaml")
        lines = text.splitlines()
        head = [
            "apiVersion: kubernetes.dask.org/v1",
            "kind: DaskJob",
            "metadata:",
            "  name: distdataeval",
            "spec:",
            "  job:",
            "    spec:",
            "      restartPolicy: Never",
            "      containers:",
            "      - name: job",
            "        image: ghcr.io/dask/dask:latest",
            "        imagePullPolicy: IfNotPresent",
            "        args:",
            "        - distdataeval",
            "        - run",
            "        - --profile",
            "        - address",
            "        - --input",
            "        - $(INPUT)",
            "        - --output",
            "        - $(OUTPUT)",
            "        resources:",
            "          requests:",
            "            cpu: '1'",
            "            memory: 4096Mi",
            "          limits:",
            "            cpu: '1'",
            "            memory: 4096Mi",
            "        env:",
            "        - name: INPUT",
            "          value: s3://bucket/embeddings.zarr",
            "        - name: OUTPUT",
            "          value: s3://bucket/results.zarr",
            "  cluster:",
            "    spec:",
        ]
        assert lines[: len(head)] == head
        # the cluster part is dask-kubernetes' own spec, indented under spec.cluster.spec
        from dask_kubernetes.operator import make_cluster_spec

        resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "1", "memory": "2Gi"}}
        expected = make_cluster_spec(name="distdataeval", image="ghcr.io/dask/dask:latest", n_workers=2,
                                     resources=resources, env={})["spec"]

        class NoAliases(yaml.SafeDumper):
            def ignore_aliases(self, data):
                return True

        body = yaml.dump(expected, Dumper=NoAliases, sort_keys=False).splitlines()
        assert lines[len(head):] == ["      " + line for line in body]
        # and a few lines spelled out, so that a change in dask-kubernetes shows here
        assert "        replicas: 2" in lines
        assert "            - dask-worker" in lines
        assert "            - dask-scheduler" in lines
        assert "            dask.org/cluster-name: distdataeval" in lines

    def test_pipeline_settings_travel_as_set_options(self):
        profile = load_profile(
            "kubernetes",
            ["pipeline.knn=approx", "pipeline.n_clusters=12", "evaluators.outliers.cluster_threshold=3.0",
             "cluster.kubernetes.namespace=ml", "cluster.kubernetes.env={EXTRA_PIP_PACKAGES: distdataeval}",
             "job.image=registry.example/distdataeval:1"],
        )
        manifest = daskjob_manifest(profile, "s3://b/in.zarr/emb", "s3://b/out.zarr")
        assert manifest["metadata"] == {"name": "distdataeval", "namespace": "ml"}
        job = manifest["spec"]["job"]["spec"]["containers"][0]
        assert job["image"] == "registry.example/distdataeval:1"
        assert job["args"] == [
            "distdataeval", "run", "--profile", "address", "--input", "s3://b/in.zarr/emb", "--output", "s3://b/out.zarr",
            "--set", "pipeline.knn=approx", "--set", "pipeline.n_clusters=12",
            "--set", "evaluators.outliers.cluster_threshold=3.0",
        ]
        assert job["env"] == [{"name": "EXTRA_PIP_PACKAGES", "value": "distdataeval"}]
        worker = manifest["spec"]["cluster"]["spec"]["worker"]["spec"]["containers"][0]
        assert worker["env"] == [{"name": "EXTRA_PIP_PACKAGES", "value": "distdataeval"}]
        # the job pod's settings load in the address profile it names
        loaded = load_profile("address", job["args"][9::2])
        assert loaded.pipeline["knn"] == "approx" and loaded.pipeline["n_clusters"] == 12
        assert loaded.evaluators["outliers"]["cluster_threshold"] == 3.0


class TestCli:
    def test_jobs_folder_holds_the_rendered_examples(self):
        assert _cli("render", "--profile", "conf/slurm.yaml").stdout == (ROOT / "jobs/slurm.sbatch").read_text()
        assert _cli("render", "--profile", "conf/kubernetes.yaml").stdout == (ROOT / "jobs/daskjob.yaml").read_text()

    def test_render_other_kinds_is_a_clear_error(self):
        out = _cli("render", "--profile", "conf/local.yaml")
        assert out.returncode == 2
        assert out.stdout == ""
        assert out.stderr.strip().splitlines() == [
            "distdataeval render: error: render makes sbatch scripts (cluster.kind: slurm) and DaskJob manifests "
            "(cluster.kind: kubernetes); profile conf/local.yaml has cluster.kind: local"
        ]

    def test_unknown_key_is_one_clear_line(self):
        out = _cli("render", "--profile", "conf/slurm.yaml", "--set", "job.wall-time=1")
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            "distdataeval render: error: unknown profile key 'job.wall-time' in override 'job.wall-time=1'; "
            "did you mean 'job.walltime'?"
        ]

    def test_missing_profile_is_one_clear_line(self):
        out = _cli("render", "--profile", "conf/nope.yaml")
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            "distdataeval render: error: profile 'conf/nope.yaml' not found: give a YAML file or one of "
            "local, kubernetes, slurm, pbs, address"
        ]

    def test_render_other_kinds_library_error(self):
        with pytest.raises(InvalidParameterError, match="has cluster.kind: pbs"):
            render(load_profile("pbs"), "pbs")

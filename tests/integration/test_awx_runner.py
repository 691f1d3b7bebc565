"""migrate.yml through ansible-runner, the way AWX runs a job template: a private data dir with the
project, an inventory (the host's own settings as host vars), extra vars shaped like the answers of
extensions/awx/survey.yml, and the keys ONLY as environment variables rendered from the injectors of
extensions/awx/credential_type.yml. No secret may appear in the job's events or output.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import sys
import tempfile
import uuid

import ansible_runner
import jinja2
import pytest
import yaml

from tests.ansible_helpers import COLLECTIONS_PATH, REPO
from tests.migrate_support import APP_HOST, prepare

AWX = REPO / "extensions" / "awx"


def survey_answers(**answers):
    """Extra vars as AWX sends them: every survey variable, its default unless answered."""
    spec = yaml.safe_load((AWX / "survey.yml").read_text())["spec"]
    extra = {}
    for question in spec:
        value = answers.pop(question["variable"], question.get("default"))
        if question["type"] == "multiselect" and isinstance(value, str):
            value = [v for v in value.split("\n") if v]
        if question["type"] == "integer" and value is not None:
            value = int(value)
        if value is not None:
            extra[question["variable"]] = value
    assert not answers, "not survey questions: %s" % answers
    return extra


def credential_env(**inputs):
    """The environment AWX injects for a credential of our custom type."""
    ctype = yaml.safe_load((AWX / "credential_type.yml").read_text())
    fields = {f["id"] for f in ctype["inputs"]["fields"]}
    assert set(inputs) <= fields
    env = {}
    for name, template in ctype["injectors"]["env"].items():
        env[name] = jinja2.Template(template).render(**{f: inputs.get(f, "") for f in fields})
    return env


@pytest.fixture
def private_data_dir(pg, rgw, nginx_factory, dns, s3):
    from tests.conftest import empty_and_delete_bucket

    root = tempfile.mkdtemp(prefix="fos-test-awx-")
    os.chmod(root, 0o755)
    bucket = "fos-awx-" + uuid.uuid4().hex[:12]
    try:
        host = prepare(os.path.join(root, "host"), pg, rgw, nginx_factory(), dns, bucket, mode="directory")
        pdd = os.path.join(root, "runner")
        for sub in ("inventory/host_vars", "env"):
            os.makedirs(os.path.join(pdd, sub))
        os.symlink(str(REPO), os.path.join(pdd, "project"))

        # The host's own settings live in the inventory, as in AWX; only survey answers are extra vars.
        survey_vars = ("migrate_app", "migrate_domain", "migrate_proxy_mode", "migrate_bucket", "migrate_endpoint",
                       "migrate_mastodon_dir")
        host_vars = {k: v for k, v in host.extra_vars.items() if k not in survey_vars}
        host_vars.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
        with open(os.path.join(pdd, "inventory", "hosts"), "w") as fh:
            fh.write("[mastodon]\nlocalhost\n")
        with open(os.path.join(pdd, "inventory", "host_vars", "localhost.yml"), "w") as fh:
            yaml.safe_dump(host_vars, fh)
        extravars = survey_answers(migrate_app="mastodon", migrate_domain=APP_HOST, migrate_proxy_mode="directory",
                                   migrate_bucket=bucket, migrate_endpoint=rgw.https_endpoint,
                                   migrate_mastodon_dir=host.live)
        # The proxy reaches the bucket virtual-host style (BUCKET.s3.localhost) while the survey's endpoint is
        # RGW's 127.0.0.1: the job template's own extra vars carry the proxy's endpoint name (role vars of
        # include_role outrank inventory host vars, so it cannot live there).
        extravars["nginx_proxy_s3_endpoint"] = host_vars.pop("nginx_proxy_s3_endpoint")
        with open(os.path.join(pdd, "inventory", "host_vars", "localhost.yml"), "w") as fh:
            yaml.safe_dump(host_vars, fh)
        with open(os.path.join(pdd, "env", "extravars"), "w") as fh:
            yaml.safe_dump(extravars, fh)
        envvars = credential_env(access_key=rgw.access_key, secret_key=rgw.secret_key)
        envvars.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_PATH),
                       PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
        with open(os.path.join(pdd, "env", "envvars"), "w") as fh:
            yaml.safe_dump(envvars, fh)
        with open(os.path.join(pdd, "env", "settings"), "w") as fh:
            yaml.safe_dump({"job_timeout": 1200, "suppress_ansible_output": True}, fh)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    yield pdd, host, bucket, extravars, envvars
    try:
        empty_and_delete_bucket(s3, bucket)
    except Exception:  # noqa: BLE001 - the run may have failed before creating it
        pass
    shutil.rmtree(root, ignore_errors=True)


def test_migrate_runs_like_an_awx_job_with_keys_only_in_env(private_data_dir, rgw, s3):
    pdd, host, bucket, extravars, envvars = private_data_dir
    assert rgw.secret_key not in json.dumps(extravars)
    assert "AWS_SECRET_ACCESS_KEY" in envvars and envvars["AWS_SECRET_ACCESS_KEY"] == rgw.secret_key
    with open(os.path.join(pdd, "inventory", "host_vars", "localhost.yml")) as fh:
        host_vars = yaml.safe_load(fh)
    assert not any("secret" in k or "access_key" in k for k in host_vars)

    run = ansible_runner.run(private_data_dir=pdd, playbook="playbooks/migrate.yml", verbosity=1, quiet=True)
    assert (run.status, run.rc) == ("successful", 0), run.stdout.read()[-5000:]

    keys = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket) for o in page.get("Contents", [])}
    # The survey's default scope is cache and local, like the role's.
    assert keys == set(host.instance.expected) | set(host.instance.expected_local)
    with open(host.env_file) as fh:
        text = fh.read()
    assert "S3_ALIAS_HOST=%s/storage" % APP_HOST in text and "AWS_SECRET_ACCESS_KEY=%s" % rgw.secret_key in text

    # No secret in what the job shows: its events and its output (the `command` artifact holds the
    # environment ansible-runner was given, as AWX keeps it to itself).
    recorded = []
    for path in glob.glob(os.path.join(pdd, "artifacts", "*", "job_events", "*.json")) + \
            glob.glob(os.path.join(pdd, "artifacts", "*", "stdout")):
        with open(path, errors="replace") as fh:
            recorded.append((path, fh.read()))
    events = [p for p, _ in recorded if "/job_events/" in p]
    assert len(events) > 50
    assert any("copy pass 1" in text for _, text in recorded)
    for secret in (rgw.secret_key, rgw.access_key, host.instance.db_params["password"]):
        leaks = [p for p, text in recorded if secret in text]
        assert not leaks, "secret found in %s" % leaks[:5]

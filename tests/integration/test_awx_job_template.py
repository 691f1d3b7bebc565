"""extensions/awx/job_template.yml against the AWX REST API stand-in (tests/services/awx_api_server.py):
the first run creates the credential type, the job template, its survey and attaches the credential;
a second run reads only (no POST, no PATCH) and reports changed=0; what differs is updated once; any
error from AWX fails the play; --check writes nothing and reports what it would change.
"""

from __future__ import annotations

import copy
import uuid

import pytest
import yaml

from tests.ansible_helpers import REPO, run_playbook
from tests.services.awx_api_server import AWXAPIServer

AWX = REPO / "extensions" / "awx"
PLAYBOOK = AWX / "job_template.yml"
TOKEN = "awx-" + uuid.uuid4().hex
TEMPLATE = "Migrate media to Vultr Object Storage"
SURVEY = yaml.safe_load((AWX / "survey.yml").read_text())
CTYPE = yaml.safe_load((AWX / "credential_type.yml").read_text())


@pytest.fixture
def awx():
    with AWXAPIServer(token=TOKEN, max_page_size=200) as server:
        server.add("projects", name="fediverse-object-storage")
        server.add("projects", name="another project")
        server.add("inventories", name="mastodon")
        yield server


def seed_credential(awx, name="vultr-media"):
    """A credential of our type, as an admin makes it in AWX once the type exists."""
    (ctype,) = awx.find("credential_types", name=CTYPE["name"])
    return awx.add("credentials", name=name, credential_type=ctype["id"], kind="cloud",
                   inputs={"access_key": "AK", "secret_key": "$encrypted$"})


def apply(awx, check=False, **extra):
    extra_vars = dict(awx_url=awx.url + "/", awx_inventory="mastodon", awx_credential="", awx_validate_certs=False)
    extra_vars.update(extra)
    return run_playbook(PLAYBOOK, extra_vars=extra_vars, check=check, env={"CONTROLLER_OAUTH_TOKEN": TOKEN})


def template(awx):
    (jt,) = awx.find("job_templates", name=TEMPLATE)
    return jt


def test_first_run_creates_second_run_changes_nothing(awx):
    first = apply(awx)
    assert first.rc == 0, first
    assert first.changed >= 3
    writes = awx.writes()
    assert writes == [("POST", "/api/v2/credential_types/"), ("POST", "/api/v2/job_templates/"),
                      ("POST", "/api/v2/job_templates/%d/survey_spec/" % template(awx)["id"])]
    (ctype,) = awx.find("credential_types", name=CTYPE["name"], kind="cloud")
    assert ctype["inputs"] == CTYPE["inputs"] and ctype["injectors"] == CTYPE["injectors"]
    jt = template(awx)
    assert jt["project"] == awx.find("projects", name="fediverse-object-storage")[0]["id"]
    assert jt["inventory"] == awx.find("inventories", name="mastodon")[0]["id"]
    assert jt["playbook"] == "playbooks/migrate.yml" and jt["survey_enabled"] is True and jt["job_slice_count"] == 1
    # The machine credential's user is an admin with sudo: the job becomes root (issue 24 item 2).
    assert jt["become_enabled"] is True
    assert awx.surveys[jt["id"]] == SURVEY

    # The admin creates the credential; the next run attaches it, once.
    cred = seed_credential(awx)
    del awx.requests[:]
    second = apply(awx, awx_credential="vultr-media")
    assert second.rc == 0, second
    assert awx.writes() == [("POST", "/api/v2/job_templates/%d/credentials/" % jt["id"])]
    assert awx.attached[jt["id"]] == [cred["id"]]
    assert second.changed == 1

    del awx.requests[:]
    third = apply(awx, awx_credential="vultr-media")
    assert third.rc == 0, third
    assert third.changed == 0, third.stats
    assert awx.writes() == []
    # every object was looked up by name (a credential type by name and kind)
    looked_up = {(p, tuple(sorted((k, v[0]) for k, v in q.items()))) for m, p, q, _b in awx.requests
                 if m == "GET" and "name" in q}
    assert ("/api/v2/credential_types/", (("kind", "cloud"), ("name", CTYPE["name"]))) in looked_up
    assert ("/api/v2/job_templates/", (("name", TEMPLATE),)) in looked_up


def test_what_differs_is_updated_once(awx):
    assert apply(awx).rc == 0
    jt = template(awx)
    survey = copy.deepcopy(SURVEY)
    survey["spec"][8]["default"] = 8  # migrate_concurrency
    assert survey["spec"][8]["variable"] == "migrate_concurrency"

    del awx.requests[:]
    changed = apply(awx, awx_survey=survey, awx_job_slice_count=4)
    assert changed.rc == 0, changed
    assert awx.writes() == [("PATCH", "/api/v2/job_templates/%d/" % jt["id"]),
                            ("POST", "/api/v2/job_templates/%d/survey_spec/" % jt["id"])]
    assert changed.changed == 2
    assert template(awx)["job_slice_count"] == 4  # "4" from the survey of extra vars is stored as 4
    assert awx.surveys[jt["id"]]["spec"][8]["default"] == 8

    del awx.requests[:]
    again = apply(awx, awx_survey=survey, awx_job_slice_count=4)
    assert (again.rc, again.changed, awx.writes()) == (0, 0, [])

    # Someone edited the credential type in the UI: it is put back, the template is left alone.
    (ctype,) = awx.find("credential_types", name=CTYPE["name"])
    awx.objects["credential_types"][ctype["id"]]["description"] = "edited by hand"
    del awx.requests[:]
    back = apply(awx, awx_survey=survey, awx_job_slice_count=4)
    assert back.rc == 0, back
    assert awx.writes() == [("PATCH", "/api/v2/credential_types/%d/" % ctype["id"])]
    assert awx.find("credential_types", name=CTYPE["name"])[0]["description"] == CTYPE["description"]


def test_another_credential_of_the_type_is_replaced(awx):
    assert apply(awx).rc == 0
    jt = template(awx)
    old = seed_credential(awx, "old keys")
    assert apply(awx, awx_credential="old keys").rc == 0
    new = seed_credential(awx, "new keys")
    del awx.requests[:]
    result = apply(awx, awx_credential="new keys")
    assert result.rc == 0, result
    path = "/api/v2/job_templates/%d/credentials/" % jt["id"]
    assert [(m, p, b) for m, p, _q, b in awx.requests if m != "GET"] == [
        ("POST", path, {"id": old["id"], "disassociate": True}), ("POST", path, {"id": new["id"]})]
    assert awx.attached[jt["id"]] == [new["id"]]


def test_an_api_error_fails_the_play(awx):
    # AWX rejects this survey (a multiple-choice default that is not a choice): 400, the play fails.
    bad = copy.deepcopy(SURVEY)
    bad["spec"][0]["default"] = "pleroma"
    result = apply(awx, awx_survey=bad)
    assert result.rc != 0
    assert any("Default choice must be answered from the choices listed" in str(t["result"]) for t in result.tasks
               if t["result"].get("failed")), result

    # A credential AWX will not attach to a job (kind insights): 400 is an error, not "already there".
    insights = awx.add("credential_types", name="Insights", kind="insights", managed=True)
    awx.add("credentials", name="insights", credential_type=insights["id"], kind="insights")
    result = apply(awx, awx_credential="insights")
    assert result.rc != 0
    assert any("Cannot assign a Credential of kind" in str(t["result"]) for t in result.tasks
               if t["result"].get("failed")), result

    # A wrong token (401), and a project that does not exist: clear failures before any write.
    del awx.requests[:]
    result = run_playbook(PLAYBOOK, extra_vars=dict(awx_url=awx.url, awx_inventory="mastodon", awx_credential=""),
                          env={"CONTROLLER_OAUTH_TOKEN": "wrong"})
    assert result.rc != 0 and awx.writes() == []
    result = apply(awx, awx_project="no such project")
    assert result.rc != 0 and awx.writes() == []
    assert any("AWX has 0 projects named" in str(t["result"]) for t in result.tasks if t["result"].get("failed")), result


def test_check_mode_writes_nothing_and_reports_changes(awx):
    result = apply(awx, check=True)
    assert result.rc == 0, result
    assert awx.writes() == []
    assert result.changed >= 2
    assert apply(awx).rc == 0
    del awx.requests[:]
    result = apply(awx, check=True, awx_job_slice_count=2)
    assert result.rc == 0, result
    assert awx.writes() == [] and result.changed == 1

# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: media_copy_wait
short_description: Wait for an async media_copy job, printing its progress
version_added: 0.1.0
description:
  - Waits for a M(fediverse.object_storage.media_copy) task started with C(async) and prints a progress
    line (done/total objects, MB/s, ETA) each time its O(fediverse.object_storage.media_copy#module:progress_file)
    changes.
  - Returns the finished job's result, like M(ansible.builtin.async_status) once the job is finished.
  - This is an action plugin, it runs on the controller and polls the app host.
options:
  jid:
    description: The job id returned by the async media_copy task (C(ansible_job_id)).
    type: str
    required: true
  progress_file:
    description: The media_copy task's O(fediverse.object_storage.media_copy#module:progress_file), on the app host.
    type: str
  interval:
    description:
      - At most this many seconds between two progress lines (the first after 1 s, then 2 s, 4 s ... up to this).
        The wait ends as soon as the job does, whatever the interval.
    type: float
    default: 10
  timeout:
    description: Give up (and fail) after this many seconds. The job itself keeps running.
    type: int
    default: 86400
  label:
    description: The text in front of each progress line.
    type: str
    default: media copy
  async_dir:
    description:
      - Where the async wrapper keeps its job files on the app host. The action plugin sets it from the
        connection's C(async_dir) shell option; leave it unset.
    type: path
    default: ~/.ansible_async
notes:
  - The action plugin runs on the controller and calls this module on the app host, which watches the job's
    status file every 50 ms and returns as soon as the job has finished, or after at most O(interval) seconds
    with the latest progress (the controller prints a progress line and calls again). A short copy is seen
    finished within a fraction of a second, with one module run on the host.
author:
  - fediverse.object_storage contributors (@fediverse-object-storage)
"""

EXAMPLES = r"""
- name: Copy the cached media in the background
  fediverse.object_storage.media_copy:
    env_file: /home/mastodon/live/.env.production
    endpoint: ewr1
    bucket: example-social-media
    progress_file: /var/tmp/media-copy.json
  async: 86400
  poll: 0
  register: copy_job

- name: Wait for it, showing progress
  fediverse.object_storage.media_copy_wait:
    jid: "{{ copy_job.ansible_job_id }}"
    progress_file: /var/tmp/media-copy.json
  register: copy_result
"""

RETURN = r"""
polls:
  description: How many times the action plugin called the module on the app host while waiting.
  returned: always
  type: int
  sample: 1
totals:
  description: The finished media_copy job's result keys are returned as they are (see M(fediverse.object_storage.media_copy)).
  returned: when the job finished
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.async_wait import (  # noqa: E402
    WaitError,
    wait_for_job,
)


def main():
    module = AnsibleModule(argument_spec=dict(
        jid=dict(type="str", required=True),
        progress_file=dict(type="str"),
        interval=dict(type="float", default=10.0),
        timeout=dict(type="int", default=86400),
        label=dict(type="str", default="media copy"),
        async_dir=dict(type="path", default="~/.ansible_async"),
    ), supports_check_mode=True)
    p = module.params
    try:
        answer = wait_for_job(p["async_dir"], p["jid"], p["progress_file"], wait=min(max(p["interval"], 0.0), 3600.0))
    except WaitError as exc:
        module.fail_json(msg=str(exc), finished=1, ansible_job_id=p["jid"])
    module.exit_json(changed=False, **answer)


if __name__ == "__main__":
    main()

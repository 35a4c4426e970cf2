"""stdout callback printing one JSON document for the run (the shape of ansible.posix.json).

Why: `stapdoctor fleet` reads which hosts were unreachable or failed from Ansible's output, and
ansible-core 2.16 ships no JSON callback (ansible.posix is a Galaxy collection this project avoids).
Use: ANSIBLE_STDOUT_CALLBACK=stapdoctor_json with playbooks/ansible.cfg (callback_plugins is set there).
"""

from __future__ import annotations

import json

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
    name: stapdoctor_json
    type: stdout
    short_description: one JSON document for the whole run (plays, tasks, per-host results, stats)
    description:
      - Same top-level shape as ansible.posix.json, for stapdoctor fleet.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "stapdoctor_json"

    def __init__(self, display=None):
        super().__init__(display)
        self.results: list[dict] = []

    def v2_playbook_on_play_start(self, play):
        self.results.append({"play": {"name": play.get_name(), "id": str(play._uuid)}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self.results:
            self.results[-1]["tasks"].append({"task": {"name": task.get_name(), "id": str(task._uuid)}, "hosts": {}})

    v2_playbook_on_handler_task_start = v2_playbook_on_task_start

    def _record(self, result, **extra):
        if not self.results or not self.results[-1]["tasks"]:
            return
        data = self._clean_results_for_json(result._result)
        data.update(extra)
        self.results[-1]["tasks"][-1]["hosts"][result._host.get_name()] = data

    def _clean_results_for_json(self, res):
        res = dict(res)
        self._clean_results(res, "")
        return res

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        summary = {h: stats.summarize(h) for h in hosts}
        self._display.display(json.dumps({"plays": self.results, "stats": summary}, indent=2, default=str))

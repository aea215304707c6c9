"""A job deleted and created again under the same id (same batch, so the
same item ids) is a new job: its webhook_sink steps deliver again.  The
outbox's once-per-image key must name the job instance, not only its id,
else every delivery of the new job is silently dropped as a repeat."""
import json
import time

from conftest import MULT
from jobs_helpers import Receiver, bp, job_body, put_workflow, stage_pngs, wait_job
from test_workflow_sinks_crash import sinks_wf

N = 3


def test_sinks_deliver_again_for_a_recreated_job(server_factory, tmp_path):
    sink = tmp_path / 'sink'
    sink.mkdir()
    s = server_factory(args=['--allow-private-urls', '--sink-folder', str(sink)]).start()
    rec = Receiver()
    try:
        put_workflow(s, 'sinks', sinks_wf(rec.url, False))
        stage_pngs(s, 'pics', N)
        for run in (1, 2):
            r = bp(s, 'POST', '/again', job_body('pics', 'sinks', spec={'workflowParameters': {'tag': f'run{run}'}}))
            assert r.status == 200, r
            job = wait_job(s, 'again', timeout=120)
            assert job['error'] is False, job
            rec.wait(run * N)
            if run == 1:
                assert bp(s, 'DELETE', '/again', check=False).status in (200, 204)
        time.sleep(1.0 * MULT)
        tags = sorted(json.loads(body)['tag'] for _, body in rec.calls)
        assert tags.count('run1') == N, tags
        assert tags.count('run2') == N, tags
    finally:
        rec.close()

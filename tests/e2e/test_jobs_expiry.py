"""Expiry of a job's outputs: a job with persisted images keeps blobs
outside its input batch's folder (the persisted crops, the export files,
task results, all under jobs/<ws>/<job>/); once its batches expire every
one of them is deleted, counted before and after, on whatever blob store
the suite runs (local folder, or S3 in the [s3] pass)."""
import time

from conftest import MULT, db_exec, db_rows
from jobs_helpers import CROP_WF, bp, download_export, job_body, put_workflow, stage_pngs, wait_job


def test_expiry_deletes_a_jobs_persisted_images_and_export(server_factory):
    # The batches live an hour; once the job is done their expiry is moved
    # to now in the database (as if the hour had passed), and the sweeper
    # (every second) deletes them with the job's outputs: the test waits for
    # the sweeper, not for a real expiry that must outlast the job.
    s = server_factory(['--batch-expiry', '3600', '--sweep-interval', '1']).start()
    put_workflow(s, 'crop', CROP_WF)
    stage_pngs(s, 'pics', 5, bulk=True)
    r = bp(s, 'POST', '/exp', job_body('pics', 'crop', fmt='csv', persist=True,
                                        spec={'imagesOutputsToBePersisted': ['crop']}))
    assert r.status == 200, r
    job = wait_job(s, 'exp')
    assert job['error'] is False, job
    exp = download_export(s, 'exp')
    assert sorted(exp['members']) == sorted(f'img-{i:04d}.png/crop.jpg' for i in range(5))
    before = s.blobs.keys()
    inputs = [k for k in before if k.startswith('b/')]
    outputs = [k for k in before if k.startswith(f'jobs/{s.workspace}/exp/')]
    assert len([k for k in inputs if '/s/' in k]) == 1, before  # the shard, kept whole
    assert len([k for k in outputs if '/images/' in k]) == 5, before  # the persisted crops
    assert [k for k in outputs if '/export/' in k], before
    print(f'blobs before expiry: {len(before)} ({len(inputs)} input, {len(outputs)} of the job)')
    assert s.ds('GET', '/pics/count').status == 200
    (created, expires), = db_rows(s.data, 'SELECT created_ms, expires_ms FROM batches WHERE batch_id=?', ('pics',))
    assert expires - created == 3600 * 1000, (created, expires)  # --batch-expiry
    t0 = time.time()
    db_exec(s.data, 'UPDATE batches SET expires_ms=? WHERE expires_ms>?', (int(t0 * 1000), int(t0 * 1000)))
    deadline = t0 + 30 * MULT
    while time.time() < deadline and s.blobs.keys():
        time.sleep(0.5)
    after = s.blobs.keys()
    print(f'blobs after expiry: {len(after)}, {time.time() - t0:.1f} s after the batches expired')
    assert after == [], after
    assert s.ds('GET', '/pics/count').status == 404
    assert s.ds('GET', '/exp-export/count').status == 404

"""GET /metrics (issue 15, item 2): the Prometheus text format, read with the
Prometheus client library's own parser, and its counters checked against
work done here: uploads, a tar shard, a job with failed images and a
webhook, a model job, 404s counted by route template; no label carries an
id, a name given by a client or a key; --metrics-token guards the page."""
import json
import time

import pytest

from conftest import MULT, Server, make_tar, png_bytes
from jobs_helpers import (CROP_WF, DET_WF, MODELS, Receiver, bp, damage_staged, job_body, ort_env,
                          put_workflow, stage_pngs, wait_job)

parser = pytest.importorskip('prometheus_client.parser')

IMG = 'simple-image-processing-v1'
COUNT_ROUTE = '/data-staging/v1/external/{workspace}/batches/{batch_id}/count'


def scrape(s, headers=None):
    r = s.raw('GET', '/metrics', headers=headers)
    assert r.status == 200, r
    assert r.headers['Content-Type'].startswith('text/plain; version=0.0.4'), r.headers
    samples = {}
    families = {}
    for fam in parser.text_string_to_metric_families(r.body.decode()):
        families[fam.name] = fam.type
        for smp in fam.samples:
            key = (smp.name, tuple(sorted(smp.labels.items())))
            assert key not in samples, f'sample given twice: {key}'
            samples[key] = smp.value
    return samples, families


def val(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_metric(s, name, want, timeout=30, **labels):
    deadline = time.time() + timeout
    while True:
        got = val(scrape(s)[0], name, **labels)
        if got >= want or time.time() > deadline:
            return got
        time.sleep(0.1)


def test_metrics_count_known_work(tmp_path):
    d = str(tmp_path)
    s = Server(d, args=['--allow-private-urls', '--models-dir', MODELS], env=ort_env(d)).start()
    rec = Receiver()
    try:
        before, fams = scrape(s)
        # every family is there from the first scrape, the unlabelled ones at 0
        for name, typ in [('vbatch_http_requests', 'counter'), ('vbatch_http_request_duration_seconds', 'histogram'),
                          ('vbatch_ingest_bytes', 'counter'), ('vbatch_ingest_items', 'counter'),
                          ('vbatch_images_processed', 'counter'), ('vbatch_images_failed', 'counter'),
                          ('vbatch_model_inference_seconds', 'histogram'), ('vbatch_webhook_deliveries', 'counter'),
                          ('vbatch_webhook_failures', 'counter'), ('vbatch_worker_heartbeats', 'counter'),
                          ('vbatch_db_errors', 'counter'), ('vbatch_blob_errors', 'counter'),
                          ('vbatch_tasks', 'gauge'), ('vbatch_jobs', 'gauge'),
                          ('process_resident_memory_bytes', 'gauge'), ('process_cpu_seconds', 'counter'),
                          ('process_open_fds', 'gauge')]:
            assert fams.get(name) == typ, (name, fams.get(name))
        assert val(before, 'vbatch_webhook_deliveries_total') == 0
        assert val(before, 'process_resident_memory_bytes') > 1e6
        assert val(before, 'process_open_fds') > 3

        # N single-image uploads
        imgs = [png_bytes(100 + i) for i in range(3)]
        for i, data in enumerate(imgs):
            assert s.upload_image('upzq7', f'pic-{i}.png', data).status == 200
        # one tar shard of 2 files
        tar = make_tar([('shard-a.png', png_bytes(200)), ('shard-b.png', png_bytes(201))])
        _, put = s.put_shard('shardzq7', tar)
        assert put.status == 200, put
        assert s.wait_count('shardzq7', 2) == 2
        # two 404s on a route with parameters, one on no route at all
        for b in ('nosuchzq7', 'nosuchzq8'):
            assert s.ds('GET', f'/{b}/count', check=False).status == 404
        assert s.raw('GET', '/no/such/endpoint/zq7').status == 404

        # a job of M=6 images of which K=2 fail, with a webhook
        put_workflow(s, 'crop', CROP_WF)
        names = stage_pngs(s, 'jobinzq7', 6, seed=300)
        damage_staged(s, 'jobinzq7', {names[1]: b'\x89PNG\r\n\x1a\n damaged', names[4]: b'\xff\xd8\xff broken'})
        r = bp(s, 'POST', '/jobzq7', job_body('jobinzq7', 'crop', notificationsURL=rec.url))
        assert r.status == 200, r
        job = wait_job(s, 'jobzq7')
        assert job['lastNotification']['imagesFailed'] == 2, job
        assert rec.wait(1), 'no webhook'

        # a model job of 2 images: one inference per image
        put_workflow(s, 'det', DET_WF)
        stage_pngs(s, 'detinzq7', 2, seed=400)
        assert bp(s, 'POST', '/detjobzq7', job_body('detinzq7', 'det')).status == 200
        assert wait_job(s, 'detjobzq7')['lastNotification']['imagesProcessed'] == 2

        assert wait_metric(s, 'vbatch_webhook_deliveries_total', 1) >= 1
        after, _ = scrape(s)

        def delta(name, **labels):
            return val(after, name, **labels) - val(before, name, **labels)

        # ingest: the bytes and items of the uploads, the shard and the job's input
        assert delta('vbatch_ingest_items_total', kind='image') == 3 + 6 + 2
        assert delta('vbatch_ingest_bytes_total', kind='image') == (
            sum(map(len, imgs)) + sum(len(png_bytes(300 + i)) for i in range(6)) +
            sum(len(png_bytes(400 + i)) for i in range(2)))
        assert delta('vbatch_ingest_items_total', kind='shard') == 2
        assert delta('vbatch_ingest_bytes_total', kind='shard') == len(tar)
        # the job: 4 processed, 2 failed; the model job: 2 processed, 2 inferences
        assert delta('vbatch_images_processed_total', job_type=IMG) == 4 + 2
        assert delta('vbatch_images_failed_total', job_type=IMG) == 2
        assert delta('vbatch_model_inference_seconds_count', model='synth-det') == 2
        assert delta('vbatch_model_inference_seconds_sum', model='synth-det') > 0
        assert delta('vbatch_model_inference_seconds_bucket', model='synth-det', le='+Inf') == 2
        # the webhook: delivered at the first try
        assert delta('vbatch_webhook_deliveries_total') == len(rec.calls) >= 1
        assert delta('vbatch_webhook_failures_total') == 0
        # workers beat at least once per task (the forced beat before publishing)
        assert delta('vbatch_worker_heartbeats_total') >= 2
        assert val(after, 'vbatch_worker_last_heartbeat_timestamp_seconds') > time.time() - 600
        # the database gauges: every task ended
        assert val(after, 'vbatch_tasks', state='pending') == 0
        assert val(after, 'vbatch_tasks', state='running') == 0
        assert val(after, 'vbatch_tasks', state='done') >= 2
        assert val(after, 'vbatch_jobs', state='succeeded') == 2
        assert val(after, 'vbatch_db_errors_total', reason='error') == 0
        # 404s by route template, not by path
        assert delta('vbatch_http_requests_total', method='GET', route=COUNT_ROUTE, status='404') == 2
        assert delta('vbatch_http_requests_total', method='GET', route='unmatched', status='404') == 1
        assert delta('vbatch_http_requests_total', method='POST',
                     route='/data-staging/v1/external/{workspace}/batches/{batch_id}/upload/image',
                     status='200') == 3 + 6 + 2
        # the latency histogram counts the same requests
        for (name, labels), v in after.items():
            if name != 'vbatch_http_request_duration_seconds_count':
                continue
            lab = dict(labels)
            reqs = sum(x for (n2, l2), x in after.items() if n2 == 'vbatch_http_requests_total'
                       and dict(l2)['method'] == lab['method'] and dict(l2)['route'] == lab['route'])
            # a request is counted once it completes, in the two families one
            # after the other: a scrape may fall between the two bumps
            assert abs(reqs - v) <= 1, (lab, reqs, v)

        # no label carries an id, a client's name or a key
        secrets = [s.key, 'zq7', 'zq8', 'pic-', 'shard-a', 'img-0', 'crop', 'det', 'default']
        for (name, labels), _ in after.items():
            for k, v in labels:
                for bad in secrets:
                    if bad == 'det' and v == 'synth-det':
                        continue  # the model id: a label by design
                    assert bad not in v, f'{name} label {k}="{v}" carries "{bad}"'
                if k == 'route':
                    assert v == 'unmatched' or v.startswith('/'), v
        routes = {dict(l)['route'] for (n, l) in after if n == 'vbatch_http_requests_total'}
        assert COUNT_ROUTE in routes and '/metrics' in routes, routes
    finally:
        rec.close()
        assert s.stop() == 0, s.tail_log()


def test_metrics_token(server_factory):
    s = server_factory(env={'VBATCH_METRICS_TOKEN': 'tok-zq7-secret'}).start()
    for hdrs in (None, {'Authorization': 'Bearer wrong'}, {'Authorization': 'Bearer tok-zq7-secre'},
                 {'Authorization': 'Basic tok-zq7-secret'}, {'Authorization': 'Bearer tok-zq7-secretx'}):
        r = s.raw('GET', '/metrics', headers=hdrs)
        assert r.status == 401, (hdrs, r)
        assert 'Bearer' in r.json()['error'] and 'tok-zq7' not in r.body.decode(), r
        assert r.headers.get('WWW-Authenticate', '').startswith('Bearer'), r.headers
    # an api_key is no metrics credential
    r = s.request('GET', '/metrics')
    assert r.status == 401, r
    # the refused scrapes are counted, under the route's template (each when
    # its request completes, just after its answer went out: poll a moment)
    deadline = time.time() + 10 * MULT
    while True:
        samples, _ = scrape(s, headers={'Authorization': 'Bearer tok-zq7-secret'})
        refused = val(samples, 'vbatch_http_requests_total', method='GET', route='/metrics', status='401')
        if refused >= 6 or time.time() > deadline:
            break
        time.sleep(0.05)
    assert refused == 6
    # the option wins over the variable
    s2 = server_factory(args=['--metrics-token', 'other-zq8'], env={'VBATCH_METRICS_TOKEN': 'tok-zq7-secret'},
                        sub='s2').start()
    assert s2.raw('GET', '/metrics', headers={'Authorization': 'Bearer tok-zq7-secret'}).status == 401
    assert s2.raw('GET', '/metrics', headers={'Authorization': 'Bearer other-zq8'}).status == 200


def test_metrics_methods_are_a_fixed_set(server_factory):
    s = server_factory().start()
    r = s.raw('FROBZQ7', '/healthz')
    assert r.status in (400, 405, 501), r
    samples, _ = scrape(s)
    methods = {dict(l)['method'] for (n, l) in samples if n == 'vbatch_http_requests_total'}
    assert 'FROBZQ7' not in methods and methods <= {'GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS',
                                                   'other'}, methods

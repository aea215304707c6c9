#!/usr/bin/python3
"""Latency from a job's POST (to an API-only `serve --workers 0`) to its
first task claimed by a separate `vbatch worker` process, on PostgreSQL:
the job's createdAt against its processing stage's startTimestamp (the
first claim), both written by the processes themselves.

    VBATCH_TEST_PG=postgresql://… /usr/bin/python3 bench/notify_latency.py
        [--bin build/vbatch] [--jobs 20]

Run it with an older binary for the figure before LISTEN/NOTIFY (idle
workers polled every 200 ms).  One line per figure:
    notify_latency <name> <value> ms
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from datetime import datetime

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, 'tests', 'e2e'))


def ms(ts):
    return datetime.fromisoformat(ts.replace('Z', '+00:00')).timestamp() * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--bin', default=os.path.join(REPO, 'build', 'vbatch'))
    ap.add_argument('--jobs', type=int, default=20)
    a = ap.parse_args()
    os.environ['VBATCH_BIN'] = os.path.abspath(a.bin)
    import conftest
    conftest.BIN = os.path.abspath(a.bin)
    from conftest import Server, png_bytes
    from jobs_helpers import CROP_WF, bp, job_body, put_workflow, wait_job
    pg = os.environ['VBATCH_TEST_PG']
    schema = 'bench_' + uuid.uuid4().hex[:10]
    subprocess.run(['psql', '-X', '-q', pg, '-c', 'CREATE SCHEMA ' + schema], check=True, capture_output=True)
    uri = pg + ('&' if '?' in pg else '?') + 'options=' + urllib.parse.quote('-csearch_path=' + schema)
    env = {'VBATCH_DB': uri}
    with tempfile.TemporaryDirectory() as d:
        s = Server(d, args=['--workers', '0', '--quiet'], env=env).start()
        w = None
        try:
            put_workflow(s, 'crop', CROP_WF)
            for i in range(4):
                assert s.upload_image('b', f'i{i}.png', png_bytes(i)).status == 200
            e = dict(os.environ)
            e.update(env)
            w = subprocess.Popen([a.bin, 'worker', '--data', s.data, '--workers', '1'], env=e,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(2)
            lat = []
            for k in range(a.jobs):
                time.sleep(0.5)  # the worker is idle, waiting
                assert bp(s, 'POST', f'/lat{k}', job_body('b', 'crop')).status == 200
                job = wait_job(s, f'lat{k}', timeout=60)
                st = bp(s, 'GET', f'/lat{k}/stages').json()['stages'][0]
                lat.append(ms(st['startTimestamp']) - ms(job['createdAt']))
        finally:
            if w:
                w.terminate()
                w.wait()
            s.stop()
            subprocess.run(['psql', '-X', '-q', pg, '-c', f'DROP SCHEMA {schema} CASCADE'], capture_output=True)
    lat.sort()
    print(f'notify_latency median {statistics.median(lat):.1f} ms')
    print(f'notify_latency p90 {lat[int(0.9 * (len(lat) - 1))]:.1f} ms')
    print(f'notify_latency max {lat[-1]:.1f} ms')
    print(f'notify_latency min {lat[0]:.1f} ms')


if __name__ == '__main__':
    main()

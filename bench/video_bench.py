#!/usr/bin/python3
"""Video job benchmark: frames/s of a video job running a detector, a
ByteTrack tracker and a line counter (tests/e2e/test_jobs_video.py TRACK_WF,
the synth-det model) over 1280x720 H.264 videos, against the same videos
through a workflow with no model (a static crop: decoding, the engine and
the results rows only), in the same run.

    /usr/bin/python3 bench/video_bench.py [--videos 4] [--workers 2] [--build build]

The video is cockatoo.mp4 of Debian's python3-imageio (280 frames, 20 fps),
staged --videos times through signed upload URLs.  One line per figure:
    video_bench <name> <value> <unit> [details]
"""
import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VIDEO = '/usr/lib/python3/dist-packages/imageio/resources/images/cockatoo.mp4'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--videos', type=int, default=4)
    ap.add_argument('--workers', type=int, default=2)
    ap.add_argument('--build', default='build')
    a = ap.parse_args()
    os.environ['VBATCH_BIN'] = os.path.join(REPO, a.build, 'vbatch')
    sys.path.insert(0, os.path.join(REPO, 'tests', 'e2e'))
    from conftest import Server
    from jobs_helpers import CROP_WF, MODELS, bp, download_export, ort_env, put_workflow, results_rows, wait_job
    from test_jobs_video import TRACK_WF, stage_video, video_body

    d = tempfile.mkdtemp(prefix='vbatch-video-bench-')
    s = Server(d, args=['--models-dir', MODELS, '--quiet', '--workers', str(a.workers)], env=ort_env(d)).start()
    try:
        put_workflow(s, 'track', TRACK_WF)
        put_workflow(s, 'crop', CROP_WF)
        with open(VIDEO, 'rb') as f:
            data = f.read()
        for i in range(a.videos):
            stage_video(s, 'vb', f'v{i}.mp4', data)
        assert s.wait_count('vb', a.videos) == a.videos
        fps = {}
        for job, wf in (('base', 'crop'), ('track', 'track')):
            t0 = time.time()
            assert bp(s, 'POST', f'/{job}', video_body('vb', wf)).status == 200
            j = wait_job(s, job, timeout=1800)
            el = time.time() - t0
            assert j['error'] is False, j
            n = len(results_rows(download_export(s, job), 'jsonl'))
            fps[job] = n / el
            print(f'video_bench {job}_frames_per_s {fps[job]:.1f} frames/s frames={n} seconds={el:.2f} '
                  f'workflow={wf} workers={a.workers}')
        print(f'video_bench track_over_base_ratio {fps["track"] / fps["base"]:.3f} '
              '(detector + tracker + line counter / decode + engine only)')
    finally:
        s.stop()


if __name__ == '__main__':
    main()

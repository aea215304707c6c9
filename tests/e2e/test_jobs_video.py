"""Video jobs (simple-video-processing-v1) against the real binary: videos
staged through signed upload URLs, one task per video, a results row per
processed frame ("frame_number" then "image"), maxVideoFPS subsampling,
persisted image outputs per frame, and the refusals of COMPAT.md 3.

The videos are those Debian's python3-imageio ships (a dependency in
scripts/install-deps.sh): realshort.mp4 is 320x240 H.264, 36 frames at
30 fps (1.2 s)."""
import os

import pytest

from conftest import Server
from jobs_helpers import (CROP_WF, DET_WF, MODELS, bp, download_export, job_body, ort_env, put_workflow,
                          results_rows, stage_pngs, wait_job)

VID = '/usr/lib/python3/dist-packages/imageio/resources/images/realshort.mp4'
FRAMES, FPS = 36, 30.02


def stage_video(s, batch, name, data):
    r = s.ds('POST', f'/{batch}/upload/video', query={'fileName': name, 'displayName': batch})
    assert r.status == 200, r
    d = r.json()['signedURLDetails']
    put = s.raw('PUT', d['uploadURL'], body=data, headers=d.get('extensionHeaders') or {})
    assert put.status == 200, put


def video_body(batch, wf, fps=None, **kw):
    b = job_body(batch, wf, **kw)
    b['type'] = 'simple-video-processing-v1'
    if fps is not None:
        b['processingSpecification']['maxVideoFPS'] = fps
    return b


# detector -> tracker -> line counter: state kept per video (WORKFLOWS.md 12, 28)
TRACK_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'},
               {'type': 'WorkflowVideoMetadata', 'name': 'video_metadata'}],
    'steps': [
        {'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
         'images': '$inputs.image', 'model_id': 'synth-det', 'confidence': 0.05},
        {'type': 'roboflow_core/byte_tracker@v3', 'name': 'bt', 'image': '$inputs.image',
         'detections': '$steps.det.predictions'},
        {'type': 'roboflow_core/line_counter@v1', 'name': 'lc', 'metadata': '$inputs.video_metadata',
         'detections': '$steps.bt.tracked_detections', 'line_segment': [[160, 0], [160, 240]]},
    ],
    'outputs': [
        {'type': 'JsonField', 'name': 'tracked', 'selector': '$steps.bt.tracked_detections'},
        {'type': 'JsonField', 'name': 'count_in', 'selector': '$steps.lc.count_in'},
        {'type': 'JsonField', 'name': 'count_out', 'selector': '$steps.lc.count_out'},
    ],
}


@pytest.fixture(scope='module')
def vsrv(tmp_path_factory):
    if not os.path.exists(VID):
        pytest.skip(f'{VID} missing (python3-imageio)')
    d = str(tmp_path_factory.mktemp('jobs-video'))
    s = Server(d, args=['--models-dir', MODELS], env=ort_env(d)).start()
    put_workflow(s, 'crop', CROP_WF)
    put_workflow(s, 'det', DET_WF)
    put_workflow(s, 'track', TRACK_WF)
    with open(VID, 'rb') as f:
        data = f.read()
    stage_video(s, 'clips', 'a.mp4', data)
    stage_video(s, 'clips', 'b.mp4', data)
    assert s.wait_count('clips', 2) == 2
    stage_pngs(s, 'stills', 3)
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def test_every_frame_jsonl(vsrv):
    r = bp(vsrv, 'POST', '/vall', video_body('clips', 'crop', spec={'workflowParameters': {'tag': 'v'}}))
    assert r.status == 200, r
    job = wait_job(vsrv, 'vall')
    assert job['error'] is False, job
    # one task per video
    tasks = bp(vsrv, 'GET', '/vall/stages/processing/tasks').json()['tasks']
    assert len(tasks) == 2
    rows = results_rows(download_export(vsrv, 'vall'), 'jsonl')
    assert len(rows) == 2 * FRAMES
    assert list(rows[0]) == ['crop', 'tag', 'frame_number', 'image']
    for name in ('a.mp4', 'b.mp4'):
        nums = [r['frame_number'] for r in rows if r['image'] == name]
        assert nums == list(range(1, FRAMES + 1))
    assert all(r['tag'] == 'v' and r['crop'] == '<deducted_image>' for r in rows)


def test_broken_workflow_stops_each_video_and_fails_the_job(vsrv):
    """The failure budget per frame: a workflow that fails on every frame
    stops each video after 10 frames; no video succeeded, so the job fails
    and the errors part lists both videos with the cause."""
    import json
    wf = dict(DET_WF, steps=[dict(DET_WF['steps'][0], model_id='no-such-model')])
    put_workflow(vsrv, 'vbroken', wf)
    r = bp(vsrv, 'POST', '/vbroken1', video_body('clips', 'vbroken'))
    assert r.status == 200, r
    job = wait_job(vsrv, 'vbroken1')
    n = job['lastNotification']
    assert job['error'] is True and n['state'] == 'failed', job
    assert 'no video succeeded' in n['message'] and 'no-such-model' in n['message'], n
    assert n['imagesFailed'] == 2
    exp = download_export(vsrv, 'vbroken1')
    errs = [json.loads(x) for x in exp['files']['errors']['errors.jsonl'].decode().splitlines()]
    assert sorted(e['image'] for e in errs) == ['a.mp4', 'b.mp4']
    for e in errs:
        assert 'stopped after 10 consecutive frames failed with the same cause (10 frames processed)' in e['cause'], e
    assert results_rows(exp) == []


def test_max_fps_csv_and_persisted_frames(vsrv):
    r = bp(vsrv, 'POST', '/vfps', video_body('clips', 'crop', fps=5, fmt='csv', persist=True,
                                             spec={'imagesOutputsToBePersisted': ['crop']}))
    assert r.status == 200, r
    job = wait_job(vsrv, 'vfps')
    assert job['error'] is False, job
    exp = download_export(vsrv, 'vfps')
    text = exp['files']['results']['aggregated_results.csv'].decode()
    assert text.splitlines()[0] == 'crop,tag,frame_number,image'
    rows = results_rows(exp, 'csv')
    per = [r for r in rows if r['image'] == 'a.mp4']
    # 1.2 s at no more than 5 frames per second of video
    assert 5 <= len(per) <= 7, len(per)
    nums = [int(r['frame_number']) for r in per]
    assert nums == sorted(nums) and nums[0] == 1 and all(b - a >= 5 for a, b in zip(nums, nums[1:]))
    assert sorted(exp['members']) == sorted(f'{r["image"]}/{r["frame_number"]}/crop.jpg' for r in rows)
    assert all(v[:2] == b'\xff\xd8' for v in exp['members'].values())


def test_detection_model_on_frames(vsrv):
    r = bp(vsrv, 'POST', '/vdet', video_body('clips', 'det', fps=10))
    assert r.status == 200, r
    job = wait_job(vsrv, 'vdet')
    assert job['error'] is False, job
    rows = results_rows(download_export(vsrv, 'vdet'), 'jsonl')
    assert rows and all('predictions' in r['predictions'] for r in rows)
    assert all(r['predictions']['image'] == {'width': 320, 'height': 240} for r in rows)


def test_tracking_and_line_counting_per_video(vsrv):
    r = bp(vsrv, 'POST', '/vtrack', video_body('clips', 'track'))
    assert r.status == 200, r
    job = wait_job(vsrv, 'vtrack')
    assert job['error'] is False, job
    rows = results_rows(download_export(vsrv, 'vtrack'), 'jsonl')
    per = {n: sorted((r for r in rows if r['image'] == n), key=lambda r: r['frame_number'])
           for n in ('a.mp4', 'b.mp4')}
    for n, rs in per.items():
        assert [r['frame_number'] for r in rs] == list(range(1, FRAMES + 1))
        ins = [r['count_in'] for r in rs]
        outs = [r['count_out'] for r in rs]
        assert ins == sorted(ins) and outs == sorted(outs), n  # cumulative per video
        ids = [p['tracker_id'] for r in rs for p in r['tracked']['predictions']]
        assert all(isinstance(i, int) and i >= 1 for i in ids)
    # the same video twice, each with its own state: the same tracks and counts
    def strip(rs):
        return [(r['count_in'], r['count_out'],
                 [(p['tracker_id'], p['x'], p['y']) for p in r['tracked']['predictions']]) for r in rs]
    assert strip(per['a.mp4']) == strip(per['b.mp4'])
    assert any(r['tracked']['predictions'] for r in per['a.mp4'])


def test_refusals(vsrv):
    def bad(job, b, text):
        r = bp(vsrv, 'POST', f'/{job}', b)
        assert r.status == 400, r
        assert text in r.json()['error'], r.json()
    bad('r1', video_body('clips', 'crop', maxImageFailureRate=0.5), 'maxImageFailureRate')
    bad('r2', job_body('clips', 'crop', spec={'maxVideoFPS': 5}), 'maxVideoFPS')
    bad('r3', job_body('clips', 'crop'), 'simple-video-processing-v1')
    bad('r4', video_body('stills', 'crop'), 'video job takes videos only')
    bad('r5', video_body('clips', 'crop', fps=0), 'maxVideoFPS')
    bad('r6', video_body('clips', 'crop', fps='fast'), 'maxVideoFPS')
    bad('r7', video_body('clips', 'crop', spec={'imagesMetadataInputsMapping': {'x': 'y'}}), 'image jobs only')
    # nothing was created
    assert bp(vsrv, 'GET', '/r1').status == 404


def test_kill9_mid_video_loses_and_duplicates_nothing(server_factory):
    """kill -9 while a video task is half-way through its frames: after the
    restart the task runs again from the start, and every frame of every
    video is in the export exactly once."""
    import time
    from conftest import MULT
    s = server_factory(['--task-lease-ms', '1500'], env={'VBATCH_JOBS_ITEM_DELAY_MS': '40'}).start()
    put_workflow(s, 'crop', CROP_WF)
    with open(VID, 'rb') as f:
        data = f.read()
    stage_video(s, 'kv', 'a.mp4', data)
    stage_video(s, 'kv', 'b.mp4', data)
    assert s.wait_count('kv', 2) == 2
    assert bp(s, 'POST', '/vkill', video_body('kv', 'crop')).status == 200
    deadline = time.time() + 60 * MULT
    while time.time() < deadline:
        ts = bp(s, 'GET', '/vkill/stages/processing/tasks').json()['tasks']
        if any(0 < (t.get('progress') or 0) < 1 for t in ts):
            break
        time.sleep(0.05)
    else:
        raise AssertionError('no video task in progress')
    key = s.key
    s.kill9()
    s.start(same_port=True)
    s.key = key
    job = wait_job(s, 'vkill', timeout=180)
    assert job['error'] is False, job
    rows = results_rows(download_export(s, 'vkill'), 'jsonl')
    got = sorted((r['image'], r['frame_number']) for r in rows)
    want = sorted((n, k) for n in ('a.mp4', 'b.mp4') for k in range(1, FRAMES + 1))
    assert got == want


# detector -> tracker -> path deviation -> trace + heatmap, and a data
# aggregator over the path deviations: every stateful block of issue 14's
# video analytics keeps its state per video (docs/WORKFLOWS-ENGINE.md)
REF_PATH = [[0, 120], [160, 120], [320, 120]]
VIDEO_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
         'images': '$inputs.image', 'model_id': 'synth-det', 'confidence': 0.05},
        {'type': 'roboflow_core/byte_tracker@v3', 'name': 'bt', 'image': '$inputs.image',
         'detections': '$steps.det.predictions'},
        {'type': 'roboflow_core/path_deviation_analytics@v2', 'name': 'pd', 'image': '$inputs.image',
         'detections': '$steps.bt.tracked_detections', 'reference_path': REF_PATH},
        {'type': 'roboflow_core/trace_visualization@v1', 'name': 'trace', 'image': '$inputs.image',
         'predictions': '$steps.bt.tracked_detections', 'trace_length': 10, 'thickness': 2},
        {'type': 'roboflow_core/heatmap_visualization@v1', 'name': 'heat', 'image': '$steps.trace.image',
         'predictions': '$steps.bt.tracked_detections', 'ignore_stationary': False},
        {'type': 'roboflow_core/data_aggregator@v1', 'name': 'agg',
         'data': {'dev': '$steps.pd.path_deviation_detections'},
         'data_operations': {'dev': [{'type': 'SequenceLength'}]},
         'aggregation_mode': {'dev': ['sum', 'max']}, 'interval_unit': 'runs', 'interval': 6},
    ],
    'outputs': [
        {'type': 'JsonField', 'name': 'pd', 'selector': '$steps.pd.path_deviation_detections'},
        {'type': 'JsonField', 'name': 'dev_sum', 'selector': '$steps.agg.dev_sum'},
        {'type': 'JsonField', 'name': 'dev_max', 'selector': '$steps.agg.dev_max'},
        {'type': 'JsonField', 'name': 'viz', 'selector': '$steps.heat.image'},
    ],
}


def test_trace_heatmap_path_deviation_aggregator_per_video(vsrv):
    put_workflow(vsrv, 'vana', VIDEO_WF)
    r = bp(vsrv, 'POST', '/vana', video_body('clips', 'vana', persist=True,
                                            spec={'imagesOutputsToBePersisted': ['viz']}))
    assert r.status == 200, r
    job = wait_job(vsrv, 'vana')
    assert job['error'] is False, job
    exp = download_export(vsrv, 'vana')
    rows = results_rows(exp, 'jsonl')
    per = {n: sorted((r for r in rows if r['image'] == n), key=lambda r: r['frame_number'])
           for n in ('a.mp4', 'b.mp4')}
    for n, rs in per.items():
        assert [r['frame_number'] for r in rs] == list(range(1, FRAMES + 1))
        seen = set()
        for r in rs:
            for p in r['pd']['predictions']:
                assert isinstance(p['tracker_id'], int) and p['path_deviation'] >= 0
                if p['tracker_id'] not in seen:
                    # a one-point path: its farthest distance to the reference points
                    seen.add(p['tracker_id'])
                    want = max(((p['x'] - x) ** 2 + (p['y'] - y) ** 2) ** 0.5 for x, y in REF_PATH)
                    assert abs(p['path_deviation'] - want) < 1e-3, (p, want)
        assert seen, n
        # the aggregator flushes every 6 runs of this video: the detections of those 6 frames
        for i, r in enumerate(rs):
            if (i + 1) % 6:
                assert r['dev_sum'] is None and r['dev_max'] is None
            else:
                lens = [len(x['pd']['predictions']) for x in rs[i - 5:i + 1]]
                assert r['dev_sum'] == sum(lens) and r['dev_max'] == max(lens)
    # each video with its own state: the same values for the same video twice
    def strip(rs):
        return [(r['dev_sum'], [(p['tracker_id'], p['path_deviation']) for p in r['pd']['predictions']])
                for r in rs]
    assert strip(per['a.mp4']) == strip(per['b.mp4'])
    assert sorted(exp['members']) == sorted(f'{r["image"]}/{r["frame_number"]}/viz.jpg' for r in rows)
    assert all(v[:2] == b'\xff\xd8' for v in exp['members'].values())


# background model blocks (blocks/motion.c): one MOG2 model per video
MOTION_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/motion_detection@v1', 'name': 'md', 'image': '$inputs.image',
         'history': 5, 'minimum_contour_area': 50},
        {'type': 'roboflow_core/background_subtraction@v1', 'name': 'bg', 'image': '$inputs.image',
         'history': 5},
    ],
    'outputs': [
        {'type': 'JsonField', 'name': 'motion', 'selector': '$steps.md.motion'},
        {'type': 'JsonField', 'name': 'alarm', 'selector': '$steps.md.alarm'},
        {'type': 'JsonField', 'name': 'zones', 'selector': '$steps.md.motion_zones'},
        {'type': 'JsonField', 'name': 'dets', 'selector': '$steps.md.detections'},
        {'type': 'JsonField', 'name': 'mask', 'selector': '$steps.bg.image'},
    ],
}


def test_motion_detection_and_background_subtraction_per_video(vsrv):
    put_workflow(vsrv, 'vmotion', MOTION_WF)
    r = bp(vsrv, 'POST', '/vmotion', video_body('clips', 'vmotion', persist=True,
                                                spec={'imagesOutputsToBePersisted': ['mask']}))
    assert r.status == 200, r
    job = wait_job(vsrv, 'vmotion')
    assert job['error'] is False, job
    exp = download_export(vsrv, 'vmotion')
    rows = results_rows(exp, 'jsonl')
    per = {n: sorted((r for r in rows if r['image'] == n), key=lambda r: r['frame_number'])
           for n in ('a.mp4', 'b.mp4')}
    for n, rs in per.items():
        assert [r['frame_number'] for r in rs] == list(range(1, FRAMES + 1))
        # the first `history` frames of each video are suppressed
        for r in rs[:5]:
            assert (r['motion'], r['alarm'], r['zones']) == (False, False, []), (n, r)
            assert r['dets']['predictions'] == []
        # the model's first frame marks everything as shadow: one contour
        # around the whole frame, and the alarm goes off
        first = rs[5]
        assert first['motion'] is True and first['alarm'] is True, first
        assert first['zones'] == [[[0, 0], [0, 239], [319, 239], [319, 0]]], first['zones']
        (d,) = first['dets']['predictions']
        assert (d['x'], d['y'], d['width'], d['height'], d['class']) == (160, 120, 320, 240, 'motion')
        # alarm only where motion starts
        for prev, cur in zip(rs[5:], rs[6:]):
            assert cur['alarm'] == (cur['motion'] and not prev['motion'])
            assert len(cur['zones']) == len(cur['dets']['predictions'])
    # each video with its own models: the same values for the same video twice
    def strip(rs):
        return [(r['motion'], r['alarm'], r['zones']) for r in rs]
    assert strip(per['a.mp4']) == strip(per['b.mp4'])
    assert sorted(exp['members']) == sorted(f'{r["image"]}/{r["frame_number"]}/mask.jpg' for r in rows)

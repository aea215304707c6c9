"""stitch_images@v1 and mask_edge_snap@v1 in image jobs, end to end.

- stitch_images: two overlapping crops of each staged picture
  (absolute_static_crop) stitched back together, the persisted stitched
  image compared with Roboflow's algorithm run by python3-opencv on the same
  crops (tests/unit/test_workflow_stitch_ref.py's stitch(): SIFT, ratio test
  0.75, findHomography RANSAC, warpPerspective, paste); a picture without
  texture fails with the reason in the job log.
- mask_edge_snap: the synthetic instance-segmentation model's masks refined
  on the synthetic pictures, each refined polygon compared with the Python
  reference of Roboflow's refine_masks (tests/unit/test_workflow_snap_ref.py's
  snap(), python3-opencv) run on the same picture and input polygons."""
import os
import sys

import cv2
import numpy as np

from conftest import Server
from jobs_helpers import MODELS, bp, download_export, job_body, ort_env, put_workflow, results_rows, wait_job

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'unit'))
import test_workflow_snap_ref as snap_ref  # noqa: E402
import test_workflow_stitch_ref as ref  # noqa: E402

# the scene is 260 x 170: left crop x 0..170, right crop x 90..260
STITCH_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/absolute_static_crop@v1', 'name': 'left', 'images': '$inputs.image',
         'x_center': 85, 'y_center': 85, 'width': 170, 'height': 170},
        {'type': 'roboflow_core/absolute_static_crop@v1', 'name': 'right', 'images': '$inputs.image',
         'x_center': 175, 'y_center': 85, 'width': 170, 'height': 170},
        {'type': 'roboflow_core/stitch_images@v1', 'name': 'stitch', 'image1': '$steps.left.crops',
         'image2': '$steps.right.crops'},
    ],
    'outputs': [{'type': 'JsonField', 'name': 'stitched', 'selector': '$steps.stitch.stitched_image'}],
}


def png(img):
    ok, b = cv2.imencode('.png', img)
    assert ok
    return b.tobytes()


def test_stitch_images_job(tmp_path):
    scene = ref.scene()
    flipped = np.ascontiguousarray(scene[::-1])  # another picture with texture
    flat = np.full((170, 260, 3), 128, np.uint8)
    s = Server(str(tmp_path)).start()
    try:
        for name, img in [('scene.png', scene), ('flipped.png', flipped), ('flat.png', flat)]:
            r = s.upload_image('st', name, png(img))
            assert r.status == 200, r
        assert s.wait_count('st', 3) == 3
        put_workflow(s, 'stitch', STITCH_WF)
        r = bp(s, 'POST', '/stitch-job', job_body('st', 'stitch', persist=True,
                                                   spec={'imagesOutputsToBePersisted': ['stitched']}))
        assert r.status == 200, r
        wait_job(s, 'stitch-job', timeout=300)
        exp = download_export(s, 'stitch-job')
        rows = results_rows(exp)
        assert sorted(row['image'] for row in rows) == ['flipped.png', 'scene.png']
        for name, img in [('scene.png', scene), ('flipped.png', flipped)]:
            want_T, want, ngood, _ = ref.stitch(np.ascontiguousarray(img[:, 0:170]),
                                               np.ascontiguousarray(img[:, 90:260]))
            jpeg = exp['members'][f'{name}/stitched.jpg']
            got = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert got.shape == want.shape, (name, got.shape, want.shape)
            # the JPEG of our image against the JPEG of OpenCV's (quality 95)
            ok, enc = cv2.imencode('.jpg', want, [cv2.IMWRITE_JPEG_QUALITY, 95])
            want_j = cv2.imdecode(enc, cv2.IMREAD_COLOR).astype(float)
            diff = np.abs(got.astype(float) - want_j)
            assert diff.mean() < 1.0 and (diff > 24).mean() < 0.005, (name, diff.mean(), (diff > 24).mean())
            # and it is the picture put back together: the left crop moved by
            # -90 px onto the right one (Roboflow's canvas truncates the
            # corners to integers: 259 columns), then shifted back by 90
            assert abs(want_T[0][2] + 90) < 0.1 and abs(want_T[1][2]) < 0.1, want_T
            assert got.shape == (170, 259, 3)
            # (bilinear resampling of the -89.97 px move and JPEG blur the fine
            # texture: close to the picture, far from it moved by 5 px)
            d0 = np.abs(got.astype(float) - img[:, :259]).mean()
            d5 = np.abs(got.astype(float) - np.roll(img, 5, axis=1)[:, :259]).mean()
            assert d0 < 10 and d0 * 2 < d5, (d0, d5)
        logs = bp(s, 'GET', '/stitch-job/logs', query={'severity': 'error', 'pageSize': 1000}).json()['logs']
        failed = [e['payload'] for e in logs if e['logType'] == 'image-processing-failed']
        assert len(failed) == 1 and 'flat.png' in failed[0]['file_path'], failed
        assert 'stitching failed' in failed[0]['cause'], failed[0]
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()


SNAP_WF = {
    'version': '1.0',
    'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
    'steps': [
        {'type': 'roboflow_core/roboflow_instance_segmentation_model@v2', 'name': 'seg',
         'images': '$inputs.image', 'model_id': 'synth-seg', 'confidence': 0.4},
        {'type': 'roboflow_core/mask_edge_snap@v1', 'name': 'snap', 'image': '$inputs.image',
         'segmentation': '$steps.seg.predictions'},
    ],
    'outputs': [{'type': 'JsonField', 'name': 'seg', 'selector': '$steps.seg.predictions'},
                {'type': 'JsonField', 'name': 'refined', 'selector': '$steps.snap.refined_segmentation'},
                {'type': 'JsonField', 'name': 'edges', 'selector': '$steps.snap.edges'}],
}


def poly_mask(points, h, w):
    """sv.polygon_to_mask: the polygon's int32 vertices filled."""
    m = np.zeros((h, w), np.uint8)
    pts = np.array([[p['x'], p['y']] for p in points], np.float64).astype(np.int32)
    cv2.fillPoly(m, [pts], 1)
    return m


def test_mask_edge_snap_job(tmp_path):
    folder = os.path.join(MODELS, 'synth-seg', 'test')
    names = sorted(f for f in os.listdir(folder) if f.endswith('.png'))[:4]
    s = Server(str(tmp_path), args=['--models-dir', MODELS], env=ort_env(str(tmp_path))).start()
    try:
        for name in names:
            with open(os.path.join(folder, name), 'rb') as f:
                assert s.upload_image('snap', name, f.read()).status == 200
        assert s.wait_count('snap', len(names)) == len(names)
        put_workflow(s, 'snap', SNAP_WF)
        r = bp(s, 'POST', '/snap-job', job_body('snap', 'snap'))
        assert r.status == 200, r
        assert wait_job(s, 'snap-job', timeout=300)['error'] is False
        rows = results_rows(download_export(s, 'snap-job'))
        assert sorted(row['image'] for row in rows) == names
        compared = moved = 0
        for row in rows:
            img = cv2.imread(os.path.join(folder, row['image']), cv2.IMREAD_COLOR)
            h, w = img.shape[:2]
            gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
            seg = row['seg']['predictions']
            refined = row['refined']['predictions']
            assert seg, row['image']
            masks = [poly_mask(p['points'], h, w) for p in seg]
            edges, want = snap_ref.snap(gray, [m.copy() for m in masks], 15, 1.0, 50.0, 2, 15, 41)
            # the edge pixels Roboflow keeps exist, and the edges output is their detection
            assert edges.any() and [e['class'] for e in row['edges']['predictions']] == ['edges']
            # a detection whose refined mask is empty is dropped; the others
            # keep their order, class and confidence
            keep = [k for k, m in enumerate(want) if m.any()]
            assert len(refined) == len(keep), (row['image'], len(refined), len(keep))
            for k, p in zip(keep, refined):
                assert (p['class'], p['confidence']) == (seg[k]['class'], seg[k]['confidence'])
                got = poly_mask(p['points'], h, w)
                area = int(want[k].sum())
                diff = int((got != want[k]).sum())
                # the serializer keeps the largest external contour: a few
                # pixels on the outline may differ from the filled reference
                # (measured: none)
                assert diff * 100 <= area, (row['image'], k, diff, area)
                moved += int((masks[k] != want[k]).sum())
                compared += 1
        # the refinement did move the outlines (by 138 to 306 pixels a mask)
        assert compared >= 4 and moved > 100 * compared, (compared, moved)
    finally:
        rc = s.stop()
    assert rc == 0, s.tail_log()

"""SAM2 end to end (issue 13 item 4): the tiny SAM2 replica
(tests/data/models/sam2-tiny: encoder.onnx + decoder.onnx,
scripts/models/make-sam-models.py) registered over HTTP as the workspace's
`sam2/hiera_tiny` with a multipart form of its two files, the synthetic
detector registered beside it, and a batch job running
roboflow_core/roboflow_object_detection_model@v2 → roboflow_core/
segment_anything@v1 prompted by the detector's boxes: one mask per box,
with the box's class, polygon points and the instance-segmentation
prediction type.  A workflow naming an unregistered SAM2 version fails its
images with the registry's reason; a decoder without the SAM2 inputs is
refused at registration."""
import json
import os

from conftest import Server, multipart
from jobs_helpers import MODELS, bp, download_export, job_body, ort_env, put_workflow, results_rows, wait_job

MR = '/models/v1/external'
SAM = os.path.join(MODELS, 'sam2-tiny')
DET = os.path.join(MODELS, 'synth-det')


def _read(*p):
    with open(os.path.join(*p), 'rb') as f:
        return f.read()


def put_form(s, model_id, fields):
    ctype, body = multipart(fields)
    return s.request('PUT', f'{MR}/{s.workspace}/models/{model_id}', body=body, headers={'Content-Type': ctype})


def test_detector_then_sam_in_a_batch_job(tmp_path):
    s = Server(str(tmp_path), args=['--allow-private-urls'], env=ort_env(str(tmp_path))).start()
    try:
        r = put_form(s, 'sam2/hiera_tiny', [('encoder.onnx', None, _read(SAM, 'encoder.onnx')),
                                            ('decoder.onnx', None, _read(SAM, 'decoder.onnx'))])
        assert r.status == 200, r
        assert r.json()['task'] == 'segment-anything', r.json()
        assert r.json()['details']['files'] == ['encoder.onnx', 'decoder.onnx'], r.json()
        env = json.loads(_read(DET, 'environment.json'))
        names = _read(DET, 'class_names.txt').decode().split()
        r = put_form(s, 'shapes/1', [('weights', 'weights.onnx', _read(DET, 'weights.onnx')),
                                     ('metadata', None, json.dumps({'class_names': names, 'environment': env}).encode())])
        assert r.status == 200, r
        # a decoder that is not a SAM2 decoder: refused, naming what it has
        r = put_form(s, 'sam2/hiera_small', [('encoder.onnx', None, _read(SAM, 'encoder.onnx')),
                                             ('decoder.onnx', None, _read(DET, 'weights.onnx'))])
        assert r.status == 400 and 'decoder.onnx inputs are' in r.json()['error'], r
        put_workflow(s, 'det-sam', {
            'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
            'steps': [
                {'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': 'det',
                 'images': '$inputs.image', 'model_id': 'shapes/1', 'confidence': 0.3},
                {'type': 'roboflow_core/segment_anything@v1', 'name': 'sam', 'images': '$inputs.image',
                 'boxes': '$steps.det.predictions'},
                {'type': 'roboflow_core/segment_anything@v1', 'name': 'sam_free', 'images': '$inputs.image',
                 'multimask_output': False},
            ],
            'outputs': [
                {'type': 'JsonField', 'name': 'det', 'selector': '$steps.det.predictions'},
                {'type': 'JsonField', 'name': 'sam', 'selector': '$steps.sam.predictions'},
                {'type': 'JsonField', 'name': 'sam_free', 'selector': '$steps.sam_free.predictions'},
            ]})
        pics = sorted(f for f in os.listdir(os.path.join(DET, 'test')) if f.endswith('.png'))[:3]
        for p in pics:
            assert s.upload_image('sampics', p, _read(DET, 'test', p)).status == 200
        assert s.wait_count('sampics', len(pics)) == len(pics)
        r = bp(s, 'POST', '/e2e-sam', job_body('sampics', 'det-sam'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-sam', timeout=240)
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'e2e-sam'))
        assert len(rows) == len(pics)
        n_masks = 0
        for row in rows:
            det, sam = row['det']['predictions'], row['sam']['predictions']
            assert det, row
            # one mask per box (none empty here), each with its box's class
            assert sorted(p['class'] for p in sam) == sorted(p['class'] for p in det), row
            for p in sam:
                assert len(p['points']) >= 3 and 0 <= p['confidence'] <= 1, p
                assert p['width'] > 0 and p['height'] > 0, p
            n_masks += len(sam)
            free = row['sam_free']['predictions']
            assert len(free) == 1 and free[0]['class'] == 'foreground' and free[0]['class_id'] == 0, row
        assert n_masks >= len(pics)
        # an unregistered version: the images fail with the registry's reason
        put_workflow(s, 'sam-large', {
            'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
            'steps': [{'type': 'roboflow_core/segment_anything@v1', 'name': 'sam', 'images': '$inputs.image',
                       'version': 'hiera_large'}],
            'outputs': [{'type': 'JsonField', 'name': 'sam', 'selector': '$steps.sam.predictions'}]})
        r = bp(s, 'POST', '/e2e-sam-large', job_body('sampics', 'sam-large'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-sam-large', timeout=120)
        assert job['error'] is True, job
        assert "unknown model 'sam2/hiera_large'" in job['lastNotification']['message'], job
    finally:
        assert s.stop() == 0, s.tail_log()

"""Detection families over HTTP: each tiny replica of tests/data/models
(YOLOv5, YOLOv7, YOLOv10, YOLO26, YOLO-NAS, RF-DETR; made by
scripts/models/make-family-models.py) registers through
PUT /models/v1/external/{ws}/models/{id} from its Roboflow package files as
they are — each file's text in the `metadata` object under its name
without extension — is described with its architecture, and runs in one
batch job (one detection step per family, and an instance segmentation
steps with the RF-DETR and YOLOv5 segmenters) over staged synthetic pictures.
A package whose outputs do not fit the architecture it names is refused
with 400 and the registry's message.  The DeepLabV3+ replica registers as a
semantic segmentation model and runs in a job through the
roboflow_semantic_segmentation_model@v1/@v2 blocks (COCO RLE masks), beside
an RF-DETR segmenter through roboflow_instance_segmentation_model@v4."""
import json
import os

import pytest

from conftest import Server, multipart
from jobs_helpers import (MODELS, bp, download_export, job_body, ort_env, put_workflow, results_rows,
                          wait_job)

MR = '/models/v1/external'
FAMILIES = [('yolov5-tiny', 'yolov5'), ('yolov7-tiny', 'yolov7'), ('yolov10-tiny', 'yolov10'),
            ('yolo26-tiny', 'yolo26'), ('yolonas-tiny', 'yolonas'), ('rfdetr-tiny', 'rfdetr')]
PACKAGE_FILES = ['class_names.txt', 'inference_config.json', 'model_config.json', 'model_type.json',
                 'environment.json']


def _read(*p):
    with open(os.path.join(*p), 'rb') as f:
        return f.read()


def package_metadata(d):
    """The package's files, each one's text under its name without extension."""
    meta = {}
    for fn in PACKAGE_FILES:
        p = os.path.join(d, fn)
        if os.path.exists(p):
            meta[fn.rsplit('.', 1)[0]] = _read(p).decode()
    return meta


def register(s, model_id, d, metadata):
    ctype, body = multipart([('weights', 'weights.onnx', _read(d, 'weights.onnx')),
                             ('metadata', None, json.dumps(metadata).encode())])
    return s.request('PUT', f'{MR}/{s.workspace}/models/{model_id}', body=body,
                     headers={'Content-Type': ctype})


@pytest.fixture(scope='module')
def srv(tmp_path_factory):
    d = str(tmp_path_factory.mktemp('families-api'))
    s = Server(d, args=['--allow-private-urls'], env=ort_env(d)).start()
    yield s
    rc = s.stop()
    assert rc == 0, s.tail_log()


def test_families_register_from_package_files_and_run_in_a_job(srv):
    for name, arch in FAMILIES:
        d = os.path.join(MODELS, name)
        meta = package_metadata(d)
        assert isinstance(meta['class_names'], str) and isinstance(meta['inference_config'], str)
        r = register(srv, f'fam-{name}', d, meta)
        assert r.status == 200, r
        b = r.json()
        assert b['task'] == 'object-detection', b
        assert b['classNames'] == ['circle', 'square', 'triangle'], b
        assert b['details']['architecture'] == arch, b['details']
        r = srv.request('GET', f'{MR}/{srv.workspace}/models/fam-{name}')
        assert r.status == 200 and r.json()['details']['architecture'] == arch, r

    steps, outputs = [], []
    for name, _ in FAMILIES:
        step = name.replace('-', '_')
        steps.append({'type': 'roboflow_core/roboflow_object_detection_model@v2', 'name': step,
                      'images': '$inputs.image', 'model_id': f'fam-{name}', 'confidence': 0.3})
        outputs.append({'type': 'JsonField', 'name': step, 'selector': f'$steps.{step}.predictions'})
    # RF-DETR instance segmentation: polygons
    d = os.path.join(MODELS, 'rfdetr-seg-tiny')
    r = register(srv, 'fam-rfdetr-seg', d, package_metadata(d))
    assert r.status == 200, r
    assert r.json()['task'] == 'instance-segmentation' and r.json()['details']['architecture'] == 'rfdetr'
    steps.append({'type': 'roboflow_core/roboflow_instance_segmentation_model@v2', 'name': 'rfdetr_seg',
                  'images': '$inputs.image', 'model_id': 'fam-rfdetr-seg', 'confidence': 0.3})
    outputs.append({'type': 'JsonField', 'name': 'rfdetr_seg', 'selector': '$steps.rfdetr_seg.predictions'})
    d = os.path.join(MODELS, 'yolov5-seg-tiny')
    r = register(srv, 'fam-yolov5-seg', d, package_metadata(d))
    assert r.status == 200, r
    assert r.json()['task'] == 'instance-segmentation' and r.json()['details']['architecture'] == 'yolov5'
    steps.append({'type': 'roboflow_core/roboflow_instance_segmentation_model@v2', 'name': 'yolov5_seg',
                  'images': '$inputs.image', 'model_id': 'fam-yolov5-seg', 'confidence': 0.4})
    outputs.append({'type': 'JsonField', 'name': 'yolov5_seg', 'selector': '$steps.yolov5_seg.predictions'})
    put_workflow(srv, 'families', {'version': '1.0',
                                   'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
                                   'steps': steps, 'outputs': outputs})
    pics = ['img_00.png', 'img_03.png', 'img_05.png']
    for fn in pics:
        r = srv.upload_image('fampics', fn, _read(MODELS, 'synth-det', 'test', fn))
        assert r.status == 200, r
    assert srv.wait_count('fampics', len(pics)) == len(pics)
    r = bp(srv, 'POST', '/e2e-families', job_body('fampics', 'families'))
    assert r.status == 200, r
    job = wait_job(srv, 'e2e-families')
    assert job['error'] is False, job
    rows = results_rows(download_export(srv, 'e2e-families'))
    assert len(rows) == len(pics)
    for name, _ in FAMILIES:
        step = name.replace('-', '_')
        preds = [p for row in rows for p in row[step]['predictions']]
        assert preds, (name, rows[0][step])
        for p in preds:
            assert p['class'] in ('circle', 'square', 'triangle'), p
            assert p['confidence'] >= 0.3 and p['width'] >= 0 and p['height'] >= 0, p
    for step in ('rfdetr_seg', 'yolov5_seg'):
        seg = [p for row in rows for p in row[step]['predictions']]
        assert seg and any(len(p['points']) >= 3 for p in seg), rows[0][step]
        for p in seg:
            for pt in p['points']:
                assert 0 <= pt['x'] <= 256 and 0 <= pt['y'] <= 256, pt


def test_package_naming_another_architecture_refused(srv):
    d = os.path.join(MODELS, 'yolov5-tiny')
    meta = package_metadata(d)
    meta['model_type'] = json.dumps({'model_type': 'rfdetr-base'})
    del meta['model_config']
    r = register(srv, 'fam-wrong', d, meta)
    assert r.status == 400, r
    msg = r.json()['error']
    assert "do not fit the architecture named by the package (model_type.json model_type 'rfdetr-base')" in msg, msg
    assert 'output0 (1, 1008, 8)' in msg, msg
    assert srv.request('GET', f'{MR}/{srv.workspace}/models/fam-wrong').status == 404
    # a file's text that is not JSON: 400 naming the key
    meta = package_metadata(d)
    meta['inference_config'] = '{"network_input": '
    r = register(srv, 'fam-badjson', d, meta)
    assert r.status == 400, r
    assert "metadata 'inference_config' must be a JSON object" in r.json()['error'], r


def rle_decode(rle):
    """COCO RLE string (pycocotools rleFrString) -> row-major 0/1 list."""
    h, w = rle['size']
    s, counts, i = rle['counts'], [], 0
    while i < len(s):
        x, k, more = 0, 0, True
        while more:
            c = ord(s[i]) - 48
            x |= (c & 0x1f) << (5 * k)
            more = bool(c & 0x20)
            i, k = i + 1, k + 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(counts) > 2:
            x += counts[-2]
        counts.append(x)
    assert sum(counts) == h * w, (sum(counts), h, w)
    col, v, pos = [0] * (h * w), 0, 0
    for n in counts:
        for j in range(pos, pos + n):
            col[j] = v
        pos, v = pos + n, 1 - v
    return [col[x * h + y] for y in range(h) for x in range(w)]  # column-major -> row-major


def test_semantic_segmentation_registers_and_runs_in_a_job(srv):
    d = os.path.join(MODELS, 'deeplab-tiny')
    r = register(srv, 'fam-deeplab', d, package_metadata(d))
    assert r.status == 200, r
    assert r.json()['task'] == 'semantic-segmentation', r.json()
    assert r.json()['classNames'] == ['background', 'circle', 'square', 'triangle'], r.json()
    # logits that do not fit the class names: 400 naming what was found
    meta = package_metadata(d)
    meta['class_names'] = 'a\nb\nc\n'
    r = register(srv, 'fam-deeplab-bad', d, meta)
    assert r.status == 400, r
    assert 'semantic segmentation with 3 classes' in r.json()['error'], r.json()
    assert 'output (1, 4, 128, 128)' in r.json()['error'], r.json()

    d = os.path.join(MODELS, 'rfdetr-seg-tiny')
    r = register(srv, 'fam-rfdetr-seg-v4', d, package_metadata(d))
    assert r.status == 200, r
    put_workflow(srv, 'semantic', {
        'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
        'steps': [{'type': 'roboflow_core/roboflow_semantic_segmentation_model@v1', 'name': 's1',
                   'images': '$inputs.image', 'model_id': 'fam-deeplab'},
                  {'type': 'roboflow_core/roboflow_semantic_segmentation_model@v2', 'name': 's2',
                   'images': '$inputs.image', 'model_id': 'fam-deeplab'},
                  {'type': 'roboflow_core/roboflow_instance_segmentation_model@v4', 'name': 'i4',
                   'images': '$inputs.image', 'model_id': 'fam-rfdetr-seg-v4',
                   'confidence_mode': 'custom', 'custom_confidence': 0.3}],
        'outputs': [{'type': 'JsonField', 'name': 'v1', 'selector': '$steps.s1.predictions'},
                    {'type': 'JsonField', 'name': 'v2', 'selector': '$steps.s2.predictions'},
                    {'type': 'JsonField', 'name': 'i4', 'selector': '$steps.i4.predictions'}]})
    pics = ['img_00.png', 'img_03.png']
    for fn in pics:
        r = srv.upload_image('sempics', fn, _read(MODELS, 'synth-det', 'test', fn))
        assert r.status == 200, r
    assert srv.wait_count('sempics', len(pics)) == len(pics)
    r = bp(srv, 'POST', '/e2e-semantic', job_body('sempics', 'semantic'))
    assert r.status == 200, r
    job = wait_job(srv, 'e2e-semantic')
    assert job['error'] is False, job
    rows = results_rows(download_export(srv, 'e2e-semantic'))
    assert len(rows) == len(pics)
    n = n_i4 = 0
    for row in rows:
        assert row['v1']['image'] == {'width': None, 'height': None}, row['v1']['image']
        assert row['v2']['image'] == {'width': 256, 'height': 256}, row['v2']['image']
        v1, v2 = row['v1']['predictions'], row['v2']['predictions']
        assert v1 and [p['class_id'] for p in v1] == [p['class_id'] for p in v2]
        seen = [0] * (256 * 256)
        for p, q in zip(v1, v2):
            assert p['rle_mask'] == q['rle_mask'] and p['confidence'] == q['confidence']
            assert 'points' not in p and 'parent_id' not in p, p
            assert p['class'] == ['background', 'circle', 'square', 'triangle'][p['class_id']]
            assert 0 < p['confidence'] <= 1
            m = rle_decode(p['rle_mask'])
            ys = [i // 256 for i, v in enumerate(m) if v]
            xs = [i % 256 for i, v in enumerate(m) if v]
            # the box spans the class's pixels, as Roboflow's block computes it
            assert (p['x'] - p['width'] / 2, p['y'] - p['height'] / 2) == (min(xs), min(ys)), p
            assert (p['x'] + p['width'] / 2, p['y'] + p['height'] / 2) == (max(xs), max(ys)), p
            for i, v in enumerate(m):
                seen[i] += v
            n += 1
        assert max(seen) == 1  # one class per pixel
        # instance segmentation v4: RLE masks instead of polygons, inside their boxes
        for p in row['i4']['predictions']:
            assert 'points' not in p and p['rle_mask']['size'] == [256, 256], p
            assert p['class'] in ('circle', 'square', 'triangle') and p['confidence'] >= 0.3
            m = rle_decode(p['rle_mask'])
            n_i4 += sum(m) > 0
    assert n >= 2 and n_i4 >= 1

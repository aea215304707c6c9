"""PP-OCR end to end: the real PP-OCRv4 folder that scripts/fetch-ocr.sh lays
out (det.onnx + rec.onnx + dict.txt + model.json; $VBATCH_OCR_DIR, default
~/.cache/vbatch/ocr/ppocr-v4) sits in the server's --models-dir as
`pp_ocr/`; a batch job runs roboflow_core/pp_ocr@v1 and ocr_model@v1 with
roboflow_core/stitch_ocr_detections@v1/@v2 over staged PNGs of known
strings (rendered with Pillow, DejaVu Sans), and the exported rows carry
the texts.  A broken OCR folder (NaN detector) is skipped at start with
the registry's reason in the log, and a job that needs it fails its images
saying the model is not registered.  Skips (with the reason) only when the
weights could not be fetched."""
import io
import os
import shutil

import pytest

from conftest import Server
from jobs_helpers import bp, download_export, job_body, ort_env, put_workflow, results_rows, wait_job

OCR_DIR = os.environ.get('VBATCH_OCR_DIR', os.path.expanduser('~/.cache/vbatch/ocr/ppocr-v4'))
HERE = os.path.dirname(os.path.abspath(__file__))
BAD_DET = os.path.join(HERE, '..', 'data', 'models', 'ocr-bad', 'det_nan.onnx')
FONT = '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'
TEXTS = [['INVOICE 2041'], ['Hello vbatch'], ['Total: 42.50'], ['Line one', 'Line two']]

pytestmark = pytest.mark.skipif(
    not all(os.path.exists(os.path.join(OCR_DIR, f)) for f in ('det.onnx', 'rec.onnx', 'dict.txt')),
    reason=f'PP-OCR weights not in {OCR_DIR} (scripts/fetch-ocr.sh could not fetch them)')


def render(lines):
    from PIL import Image, ImageDraw, ImageFont
    font = ImageFont.truetype(FONT, 32)
    w = max(int(font.getlength(t)) for t in lines) + 80
    img = Image.new('RGB', (w, 30 + 56 * len(lines)), 'white')
    d = ImageDraw.Draw(img)
    for i, t in enumerate(lines):
        d.text((40, 15 + 56 * i), t, fill='black', font=font)
    b = io.BytesIO()
    img.save(b, 'PNG')
    return b.getvalue()


def models_dir(base, broken=False):
    d = os.path.join(base, 'models', 'pp_ocr')
    os.makedirs(d)
    for f in ('det.onnx', 'rec.onnx', 'dict.txt'):
        os.symlink(os.path.join(OCR_DIR, f), os.path.join(d, f))
    if broken:
        os.unlink(os.path.join(d, 'det.onnx'))
        shutil.copy(BAD_DET, os.path.join(d, 'det.onnx'))
    return os.path.join(base, 'models')


def test_ocr_blocks_in_a_batch_job(tmp_path):
    base = str(tmp_path)
    os.makedirs(os.path.join(base, 'data'))
    s = Server(os.path.join(base, 'data'),
               args=['--allow-private-urls', '--models-dir', models_dir(base)],
               env=ort_env(base)).start()
    try:
        assert "registered OCR model 'pp_ocr'" in s.tail_log()
        put_workflow(s, 'ocr', {
            'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
            'steps': [
                {'type': 'roboflow_core/pp_ocr@v1', 'name': 'pp', 'images': '$inputs.image'},
                {'type': 'roboflow_core/ocr_model@v1', 'name': 'om', 'images': '$inputs.image'},
                {'type': 'roboflow_core/stitch_ocr_detections@v1', 'name': 'st1',
                 'predictions': '$steps.pp.predictions', 'reading_direction': 'left_to_right',
                 'delimiter': ' '},
                {'type': 'roboflow_core/stitch_ocr_detections@v2', 'name': 'st2',
                 'predictions': '$steps.om.predictions', 'reading_direction': 'auto',
                 'stitching_algorithm': 'tolerance', 'tolerance': 10},
            ],
            'outputs': [
                {'type': 'JsonField', 'name': 'text', 'selector': '$steps.pp.result'},
                {'type': 'JsonField', 'name': 'preds', 'selector': '$steps.pp.predictions'},
                {'type': 'JsonField', 'name': 'ptype', 'selector': '$steps.pp.prediction_type'},
                {'type': 'JsonField', 'name': 'om_text', 'selector': '$steps.om.result'},
                {'type': 'JsonField', 'name': 'st1', 'selector': '$steps.st1.ocr_text'},
                {'type': 'JsonField', 'name': 'st2', 'selector': '$steps.st2.ocr_text'},
            ]})
        for i, lines in enumerate(TEXTS):
            r = s.upload_image('ocrpics', f'text_{i}.png', render(lines))
            assert r.status == 200, r
        assert s.wait_count('ocrpics', len(TEXTS)) == len(TEXTS)
        r = bp(s, 'POST', '/e2e-ocr', job_body('ocrpics', 'ocr'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-ocr', timeout=240)
        assert job['error'] is False, job
        rows = results_rows(download_export(s, 'e2e-ocr'))
        assert len(rows) == len(TEXTS)
        seen = set()
        for row in rows:
            truth = next(t for t in TEXTS if row['text'].replace(' ', '') == ''.join(t).replace(' ', ''))
            seen.add(tuple(truth))
            assert row['om_text'] == row['text'], row
            assert row['ptype'] == 'ocr', row
            preds = row['preds']['predictions']
            assert preds, row
            for p in preds:
                assert p['class_id'] == 0 and 0.5 <= p['confidence'] <= 1, p
                assert p['width'] > 0 and p['height'] > 0, p
            assert ''.join(p['class'] for p in preds).replace(' ', '') == ''.join(truth).replace(' ', '')
            # stitched: one line per rendered line, in order
            st1_lines = row['st1'].split('\n')
            assert len(st1_lines) == len(truth), row['st1']
            for got, want in zip(st1_lines, truth):
                assert got.replace(' ', '') == want.replace(' ', ''), (row['st1'], truth)
            assert row['st2'].replace(' ', '').split('\n') == [t.replace(' ', '') for t in truth], row['st2']
        assert len(seen) == len(TEXTS), rows
    finally:
        assert s.stop() == 0, s.tail_log()


def test_broken_ocr_folder_skipped_and_job_fails_clearly(tmp_path):
    base = str(tmp_path)
    os.makedirs(os.path.join(base, 'data'))
    s = Server(os.path.join(base, 'data'),
               args=['--allow-private-urls', '--models-dir', models_dir(base, broken=True)],
               env=ort_env(base)).start()
    try:
        log = s.tail_log()
        assert 'text detector (det.onnx): output is not finite' in log, log
        put_workflow(s, 'ocr', {
            'version': '1.0', 'inputs': [{'type': 'WorkflowImage', 'name': 'image'}],
            'steps': [{'type': 'roboflow_core/pp_ocr@v1', 'name': 'pp', 'images': '$inputs.image'}],
            'outputs': [{'type': 'JsonField', 'name': 'text', 'selector': '$steps.pp.result'}]})
        r = s.upload_image('ocrbad', 'a.png', render(['HELLO']))
        assert r.status == 200, r
        assert s.wait_count('ocrbad', 1) == 1
        r = bp(s, 'POST', '/e2e-ocr-bad', job_body('ocrbad', 'ocr'))
        assert r.status == 200, r
        job = wait_job(s, 'e2e-ocr-bad', timeout=120)
        assert job['isTerminal'], job
        logs = bp(s, 'GET', '/e2e-ocr-bad/logs')
        text = logs.body.decode(errors='replace') if hasattr(logs, 'body') else str(logs)
        assert job['error'] is True, job
        assert "unknown model 'pp_ocr' (not registered)" in job['lastNotification']['message'], job
        assert "model 'pp_ocr': unknown model 'pp_ocr' (not registered)" in text, text[:2000]
    finally:
        assert s.stop() == 0, s.tail_log()
